-- Delete at most one batch of dead jobs. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: 1 batch size. Returns how many were deleted (0 = the dead set is empty).
local ids = redis.call('ZRANGE', KEYS[6], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then
  return 0
end
redis.call('ZREM', KEYS[6], unpack(ids))
redis.call('HDEL', KEYS[4], unpack(ids))
redis.call('HDEL', KEYS[5], unpack(ids))
redis.call('HDEL', KEYS[7], unpack(ids))
return #ids
