-- Extend the leases of deliveries still held. ARGV: 1 new expiry (ms), then pairs (job id,
-- delivery token). Returns one 1 (renewed) / 0 (lost: reclaimed or re-delivered meanwhile) per
-- pair.
local expiry = ARGV[1]
local held, answers = fenced(delivery_pairs(2))
local renew = {}
for _, id in ipairs(held) do
  renew[#renew + 1] = expiry
  renew[#renew + 1] = id
end
if #renew > 0 then redis.call('ZADD', leased, 'XX', unpack(renew)) end
return answers
