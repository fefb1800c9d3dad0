-- Move a queue's messages from kombu's default priority lists (steps 3 and 9, filled by
-- a producer without boundary-celery) to the list of their priority, oldest first.
-- KEYS: the legacy lists of the queue
-- ARGV: 1 queue name, 2 list separator, 3 most messages to move in this call,
--       4.. the priority steps in use, ascending
local steps = {}
for i = 4, #ARGV do
  steps[#steps + 1] = tonumber(ARGV[i])
end
local function target(priority)
  local step = steps[1]
  for _, s in ipairs(steps) do
    if priority >= s then
      step = s
    end
  end
  if step == 0 then
    return ARGV[1]
  end
  return ARGV[1] .. ARGV[2] .. step
end
local moved = 0
local limit = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  while moved < limit do
    local raw = redis.call('RPOP', key)
    if not raw then
      break
    end
    local ok, msg = pcall(cjson.decode, raw)
    local priority = 4
    if ok and type(msg) == 'table' and type(msg.properties) == 'table'
        and tonumber(msg.properties.priority) then
      priority = math.max(0, math.min(9, tonumber(msg.properties.priority)))
    end
    redis.call('LPUSH', target(priority), raw)
    moved = moved + 1
  end
end
return moved
