-- Move a failed job to the head of the dead letter queue, keeping the DLQ bounded.
-- The score is the dead-letter time, made strictly greater than the current head's so
-- the newest entry is first even within one millisecond.
-- KEYS: 1 job record, 2 DLQ zset, 3 queue stats hash, 4 queue-names set,
--       5 duration histogram hash, 6 histogram index set
-- ARGV: 1 now ms (the dead-letter time), 2 job id, 3 duration ms ('' = not run), 4 max DLQ size,
--       5 oldest score kept, 6 record key prefix, 7 queue name,
--       8 '1' to count the failure (counters and duration histogram, or 'untimed'
--       when it never ran), '0' not to,
--       9 histogram bucket field, 10 histogram index member,
--       then field/value pairs to set on the record.
redis.call('HSET', KEYS[1], unpack(ARGV, 11))
redis.call('PERSIST', KEYS[1])
local score = tonumber(ARGV[1])
local head = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if head[2] and head[1] ~= ARGV[2] and tonumber(head[2]) >= score then
  score = tonumber(head[2]) + 1
end
redis.call('ZADD', KEYS[2], score, ARGV[2])
redis.call('SADD', KEYS[4], ARGV[7])
if ARGV[8] == '1' then
  redis.call('HINCRBY', KEYS[3], 'failed', 1)
  if ARGV[3] == '' then
    redis.call('HINCRBY', KEYS[3], 'untimed', 1)  -- never ran: not in the average
  else
    redis.call('HINCRBYFLOAT', KEYS[3], 'duration_ms', ARGV[3])
    if redis.call('HINCRBY', KEYS[5], 'count', 1) == 1 then
      redis.call('SADD', KEYS[6], ARGV[10])
    end
    redis.call('HINCRBY', KEYS[5], ARGV[9], 1)
    redis.call('HINCRBYFLOAT', KEYS[5], 'sum_ms', ARGV[3])
  end
end
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[2], id)
    redis.call('DEL', ARGV[6] .. id)
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5]))
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  drop(redis.call('ZRANGE', KEYS[2], 0, excess - 1))
end
return 1
