-- Record a successful attempt.
-- KEYS: 1 job record, 2 queue stats hash
-- ARGV: 1 now ms, 2 result JSON, 3 duration ms, 4 TTL seconds
redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_at', ARGV[1],
           'updated_at', ARGV[1], 'result', ARGV[2], 'duration_ms', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'succeeded', 1)
redis.call('HINCRBYFLOAT', KEYS[2], 'duration_ms', ARGV[3])
return 1
