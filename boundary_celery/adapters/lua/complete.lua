-- Record a successful attempt, its counters and its duration histogram bucket, unless
-- the record is already in a terminal status (the core's TERMINAL_STATUSES, passed in):
-- a write retried after its reply was lost (Redis restarting) is counted once.
-- KEYS: 1 job record, 2 queue stats hash, 3 duration histogram hash, 4 histogram index set
-- ARGV: 1 now ms, 2 result JSON, 3 duration ms, 4 TTL seconds,
--       5 histogram bucket field, 6 histogram index member, 7 terminal statuses ",a,b,"
-- Returns 1 when recorded, 0 when the record was already terminal.
local status = redis.call('HGET', KEYS[1], 'status')
if status and string.find(ARGV[7], ',' .. status .. ',', 1, true) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_at', ARGV[1],
           'updated_at', ARGV[1], 'result', ARGV[2], 'duration_ms', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'succeeded', 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'duration_ms', ARGV[3])
if redis.call('HINCRBY', KEYS[3], 'count', 1) == 1 then
  redis.call('SADD', KEYS[4], ARGV[6])  -- first observation of this job type and queue
end
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'sum_ms', ARGV[3])
return 1
