-- Acknowledge successful deliveries. ARGV: 1 recent-list cap, then pairs (job id, delivery
-- token). Only a delivery that still holds its lease is accepted (fencing).
-- Returns one 1 (accepted) / 0 (stale, refused) per pair, in order.
local cap = tonumber(ARGV[1])
local ids, tokens = delivery_pairs(2)
local accepted, answers = fenced(ids, tokens)
if #accepted > 0 then
  -- Only a job delivered more than once (the token is the delivery count) can have failed
  -- before and left an error behind.
  local redelivered = {}
  for i, id in ipairs(ids) do
    if answers[i] == 1 and tokens[i] ~= '1' then
      redelivered[#redelivered + 1] = id
    end
  end
  if #redelivered > 0 then redis.call('HDEL', errors, unpack(redelivered)) end
  -- Done jobs leave nothing behind but a counter and a capped list of recent ids.
  redis.call('ZREM', leased, unpack(accepted))
  redis.call('HDEL', payloads, unpack(accepted))
  redis.call('HDEL', deliveries, unpack(accepted))
  redis.call('HINCRBY', stats, 'done', #accepted)
  redis.call('LPUSH', recent, unpack(accepted))
  redis.call('LTRIM', recent, 0, cap - 1)
end
return answers
