-- Publish due scheduled jobs: each moves from the sorted set to its list
-- exactly once, atomically, so concurrent or killed schedulers lose nothing.
-- KEYS: 1 scheduled zset, 2 scheduled payload hash, 3 the lists' wake stream (told once
--       when a list that was empty got a message)
-- ARGV: 1 now ms, 2 batch size, 3 record key prefix
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local woke = false
for _, id in ipairs(ids) do
  local p = redis.call('HGET', KEYS[2], id)
  if p then
    local nl = string.find(p, '\n', 1, true)
    if redis.call('LPUSH', string.sub(p, 1, nl - 1), string.sub(p, nl + 1)) == 1 then
      woke = true
    end
    redis.call('HDEL', KEYS[2], id)
    local rk = ARGV[3] .. id
    if redis.call('HGET', rk, 'status') == 'scheduled' then
      redis.call('HSET', rk, 'status', 'pending', 'updated_at', ARGV[1])
    end
  end
  redis.call('ZREM', KEYS[1], id)
end
if woke then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100, '*', 'q', 'due')
end
return #ids
