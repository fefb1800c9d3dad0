-- Mark a delivered job running, unless this delivery must not run.
-- The rule is the core's (core.delivery.delivery_verdict); this script applies it
-- atomically with the write.
-- KEYS: 1 job record, 2 unacked index (each delivery's lease: its last renewal, s)
-- ARGV: 1 now ms, 2 worker name, 3 retry count carried by the message,
--       4 effective max retries, 5 the skip statuses as ",a,b," (a record in one of them
--       is never run again), 6 this delivery's tag ('' = unknown), 7 the lease floor
--       (s: a lease renewed after it is live), then field/value pairs used only when no
--       record exists.
-- Returns 'ok', or the reason to skip: a skip status, 'stale' (the record already moved
-- past this message's attempt: a duplicate delivery), 'busy' (this attempt runs for
-- another delivery under a live lease), or 'missing' when there is no record and no
-- fields to create one with.
local cur = redis.call('HMGET', KEYS[1], 'status', 'retry_count', 'tag')
local status, rc, holder = cur[1], tonumber(cur[2]), cur[3]
if status and string.find(ARGV[5], ',' .. status .. ',', 1, true) then
  return status
end
if rc and rc > tonumber(ARGV[3]) then
  return 'stale'
end
if status == 'running' and holder and ARGV[6] ~= '' and holder ~= ARGV[6]
    and rc == tonumber(ARGV[3]) then
  local renewed = redis.call('ZSCORE', KEYS[2], holder)
  if renewed and tonumber(renewed) > tonumber(ARGV[7]) then
    return 'busy'
  end
end
if not status then
  if #ARGV <= 7 then
    return 'missing'
  end
  redis.call('HSET', KEYS[1], unpack(ARGV, 8))
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1],
           'updated_at', ARGV[1], 'worker', ARGV[2], 'retry_count', ARGV[3],
           'max_retries', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'tag', ARGV[6])
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return 'ok'
