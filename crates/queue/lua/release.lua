-- Give back deliveries that were fetched but never started (shutdown), to the front of the
-- ready list, without counting them as attempts. ARGV: pairs (job id, delivery token).
-- Returns how many were released.
local ids, tokens = delivery_pairs(1)
local held = holds(ids, tokens)
local released = {}
for i, id in ipairs(ids) do
  if held[i] then
    redis.call('HINCRBY', deliveries, id, -1)
    released[#released + 1] = id
  end
end
if #released > 0 then
  redis.call('ZREM', leased, unpack(released))
  redis.call('LPUSH', ready, unpack(released))
  signal()
end
return #released
