-- Give back deliveries that were fetched but never started (shutdown), to the front of the
-- ready list, without counting them as attempts. ARGV: pairs (job id, delivery token).
-- Returns how many were released.
local released = fenced(delivery_pairs(1))
for _, id in ipairs(released) do
  redis.call('HINCRBY', deliveries, id, -1)
end
if #released > 0 then
  redis.call('ZREM', leased, unpack(released))
  redis.call('LPUSH', ready, unpack(released))
  signal()
end
return #released
