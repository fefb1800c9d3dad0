-- Publish one job message and write its record in one atomic step, once per publish:
-- a publish sent again after its reply was lost (same token) stores nothing more.
-- A scheduled message due before every other one is announced on the wake channel, so
-- sleeping schedulers wake for it.
-- KEYS: 1 target list (queue + priority step), 2 job record, 3 scheduled zset,
--       4 scheduled payload hash, 5 queue-names set, 6 queue stats hash,
--       7 the schedulers' wake channel, 8 the lists' wake stream (a list that was empty
--       gets a message: idle workers claim again)
-- ARGV: 1 message, 2 due ms ('' = now), 3 job id, 4 queue name,
--       5 counter field to bump in KEYS[6] ('' = none),
--       6 the publish's token ('' = none; kept in the record's 'publish' field),
--       7 n = number of record fields to delete, 8..7+n their names,
--       then field/value pairs to set on the record.
-- Returns 1, or 0 when this publish was stored already.
if ARGV[6] ~= '' then
  if redis.call('HGET', KEYS[2], 'publish') == ARGV[6] then
    return 0
  end
  redis.call('HSET', KEYS[2], 'publish', ARGV[6])
end
if ARGV[2] ~= '' then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[3], KEYS[1] .. '\n' .. ARGV[1])
  if not first[2] or tonumber(ARGV[2]) < tonumber(first[2]) then
    redis.call('PUBLISH', KEYS[7], ARGV[2])
  end
elseif redis.call('LPUSH', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', 100, '*', 'q', KEYS[1])
end
local ndel = tonumber(ARGV[7])
if ndel > 0 then
  redis.call('HDEL', KEYS[2], unpack(ARGV, 8, 7 + ndel))
end
if #ARGV > 7 + ndel then
  redis.call('HSET', KEYS[2], unpack(ARGV, 8 + ndel))
end
redis.call('SADD', KEYS[5], ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[6], ARGV[5], 1)
end
return 1
