-- Record a failed delivery. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: 1 job id, 2 delivery token, 3 now (ms), 4 retry at (ms; -1 = dead-letter), 5 error.
-- Returns 0 if the delivery is stale (refused), 1 if re-scheduled, 2 if dead-lettered.
local id, token, now, retry_at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HGET', KEYS[5], id) ~= token or not redis.call('ZSCORE', KEYS[3], id) then
  return 0
end
redis.call('ZREM', KEYS[3], id)
if retry_at >= 0 then
  redis.call('ZADD', KEYS[2], retry_at, id)
  redis.call('HINCRBY', KEYS[9], 'retried', 1)
  if redis.call('ZRANGE', KEYS[2], 0, 0)[1] == id then
    signal()
  end
  return 1
end
redis.call('ZADD', KEYS[6], now, id)
redis.call('HSET', KEYS[7], id, ARGV[5])
redis.call('HINCRBY', KEYS[9], 'dead', 1)
return 2
