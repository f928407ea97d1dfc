-- Acknowledge successful deliveries. ARGV: 1 recent-list cap, then pairs (job id, delivery
-- token). Only a delivery that still holds its lease is accepted (fencing).
-- Returns one 1 (accepted) / 0 (stale, refused) per pair, in order.
local cap = tonumber(ARGV[1])
local accepted, answers = fenced(delivery_pairs(2))
if #accepted > 0 then
  -- Done jobs leave nothing behind but a counter and a capped list of recent ids.
  redis.call('ZREM', leased, unpack(accepted))
  redis.call('HDEL', payloads, unpack(accepted))
  redis.call('HDEL', deliveries, unpack(accepted))
  redis.call('HINCRBY', stats, 'done', #accepted)
  redis.call('LPUSH', recent, unpack(accepted))
  redis.call('LTRIM', recent, 0, cap - 1)
end
return answers
