-- Claim a worker's next message, most urgent list first, and record it as unacked
-- (kombu's ack emulation: the hash entry and the lease's start) in the same atomic
-- step. A message is never out of every list and out of the unacked hash at once, so a
-- reply that never reaches the worker (Redis killed, a dropped connection) loses
-- nothing: the lease sweep delivers it again. Writes come before the pop, so a Redis
-- out of memory refuses the claim with the message still in its list.
-- KEYS: 1..n the lists in reading order, n+1 unacked hash, n+2 unacked index (leases),
--       n+3 the lists' wake stream
-- ARGV: 1 now (seconds: the lease's start), 2 n
-- Returns {i, message, delivery tag} for the message taken from the i-th list ({i,
-- message} when it has no readable tag, exchange or routing key: taken unrecorded, for
-- the worker to dead-letter), or {0, last wake id} when every list is empty.
local n = tonumber(ARGV[2])
for i = 1, n do
  local item = redis.call('LINDEX', KEYS[i], -1)
  if item then
    local ok, msg = pcall(cjson.decode, item)
    local tag, ex, rk
    if ok and type(msg) == 'table' and type(msg.properties) == 'table' then
      local info = msg.properties.delivery_info
      tag = msg.properties.delivery_tag
      if type(info) == 'table' then
        ex, rk = info.exchange, info.routing_key
      end
    end
    if type(tag) == 'string' and type(ex) == 'string' and type(rk) == 'string' then
      redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
      redis.call('HSET', KEYS[n + 1], tag,
                 '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      redis.call('RPOP', KEYS[i])
      return {i, item, tag}
    end
    redis.call('RPOP', KEYS[i])
    return {i, item}
  end
end
local last = redis.call('XREVRANGE', KEYS[n + 3], '+', '-', 'COUNT', 1)[1]
return {0, last and last[1] or '0-0'}
