-- Record a failed delivery. ARGV: 1 job id, 2 delivery token, 3 now (ms), 4 retry at (ms;
-- -1 = dead-letter), 5 error.
-- Returns 0 if the delivery is stale (refused), 1 if re-scheduled, 2 if dead-lettered.
local id, token, now, retry_at, message = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if not holds({id}, {token})[1] then
  return 0
end
redis.call('ZREM', leased, id)
-- The last error is kept while the job waits for its retry too (the board shows it).
redis.call('HSET', errors, id, message)
if retry_at >= 0 then
  schedule(id, retry_at)
  redis.call('HINCRBY', stats, 'retried', 1)
  return 1
end
redis.call('ZADD', dead, now, id)
redis.call('HINCRBY', stats, 'dead', 1)
return 2
