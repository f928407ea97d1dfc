-- Give back deliveries that were fetched but never started (shutdown), to the front of the
-- ready list, without counting them as attempts. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: pairs (job id, delivery token). Returns how many were released.
local released = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[5], id) == ARGV[i + 1] and redis.call('ZREM', KEYS[3], id) == 1 then
    redis.call('HINCRBY', KEYS[5], id, -1)
    released[#released + 1] = id
  end
end
if #released > 0 then
  redis.call('LPUSH', KEYS[1], unpack(released))
  signal()
end
return #released
