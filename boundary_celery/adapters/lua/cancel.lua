-- Cancel a job as the core decides (core.status.cancel_action), in one atomic step.
-- A job whose status is in ARGV[3] becomes cancelled now, leaves the scheduled set and
-- expires like a completed one; a message of it still in a queue list stays there
-- (begin.lua skips it on delivery). A job whose status is in ARGV[4] only gets the
-- 'cancel_requested' field (its status is unchanged). Any other status: nothing.
-- KEYS: 1 job record, 2 scheduled zset, 3 scheduled payload hash
-- ARGV: 1 now ms, 2 job id, 3 statuses cancelled now as ",a,b,",
--       4 statuses that get the request as ",a,b,", 5 TTL seconds of a cancelled record,
--       6 the reason as the record's error JSON ('' = none; kept only when cancelled now)
-- Returns {} when there is no record, else the action ('cancel', 'request' or 'none')
-- followed by the record after it as field/value pairs.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {}
end
local action = 'none'
if string.find(ARGV[3], ',' .. status .. ',', 1, true) then
  action = 'cancel'
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', ARGV[1],
             'updated_at', ARGV[1])
  if ARGV[6] ~= '' then
    redis.call('HSET', KEYS[1], 'error', ARGV[6])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
elseif string.find(ARGV[4], ',' .. status .. ',', 1, true) then
  action = 'request'
  redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[1])
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, action)
return out
