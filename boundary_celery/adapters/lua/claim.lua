-- Claim a worker's next message, most urgent list first, and record it as unacked
-- (kombu's ack emulation: the hash entry and the lease's start) in the same atomic
-- step. A message is never out of every list and out of the unacked hash at once, so a
-- reply that never reaches the worker (Redis killed, a dropped connection) loses
-- nothing: the lease sweep delivers it again. Writes come before the pop, so a Redis
-- out of memory refuses the claim with the message still in its list.
-- The entry is kombu's [message, exchange, routing key] with the anonymous exchange and
-- the queue the message was claimed from: a redelivery goes back to that queue.
-- KEYS: 1..n the lists in reading order, n+1 unacked hash, n+2 unacked index (leases),
--       n+3 the lists' wake stream
-- ARGV: 1 now (seconds: the lease's start), 2 n, 2+i the JSON string of list i's queue
-- Returns {i, message, delivery tag} for the message taken from the i-th list ({i,
-- message} when it has no readable tag: taken unrecorded, for the worker to
-- dead-letter), or {0, last wake id} when every list is empty.
local n = tonumber(ARGV[2])

-- The delivery tag: kombu writes it last ('..."delivery_tag": "<tag>"}}'), so it is read
-- off the message's end; any other shape is decoded.
local function tag_of(item)
  local tag = string.match(string.sub(item, -120), '"delivery_tag": "([^"\\]+)"}}$')
  if tag then
    return tag
  end
  local ok, msg = pcall(cjson.decode, item)
  if ok and type(msg) == 'table' and type(msg.properties) == 'table'
      and type(msg.properties.delivery_tag) == 'string' then
    return msg.properties.delivery_tag
  end
  return nil
end

for i = 1, n do
  local item = redis.call('LINDEX', KEYS[i], -1)
  if item then
    local tag = tag_of(item)
    if tag then
      redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
      redis.call('HSET', KEYS[n + 1], tag, '[' .. item .. ', "", ' .. ARGV[2 + i] .. ']')
    end
    redis.call('RPOP', KEYS[i])
    return {i, item, tag}
  end
end
local last = redis.call('XREVRANGE', KEYS[n + 3], '+', '-', 'COUNT', 1)[1]
return {0, last and last[1] or '0-0'}
