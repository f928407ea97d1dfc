-- Delete at most one batch of dead jobs. ARGV: 1 batch size.
-- Returns how many were deleted (0 = the dead set is empty).
local batch = tonumber(ARGV[1])
local ids = redis.call('ZRANGE', dead, 0, batch - 1)
if #ids == 0 then
  return 0
end
redis.call('ZREM', dead, unpack(ids))
redis.call('HDEL', payloads, unpack(ids))
redis.call('HDEL', deliveries, unpack(ids))
redis.call('HDEL', errors, unpack(ids))
return #ids
