-- Extend the leases of deliveries still held. ARGV: 1 new expiry (ms), then pairs (job id,
-- delivery token). Returns one 1 (renewed) / 0 (lost: reclaimed or re-delivered meanwhile) per
-- pair.
local expiry = ARGV[1]
local ids, tokens = delivery_pairs(2)
local held = holds(ids, tokens)
local renew, out = {}, {}
for i, id in ipairs(ids) do
  if held[i] then
    renew[#renew + 1] = expiry
    renew[#renew + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #renew > 0 then redis.call('ZADD', leased, 'XX', unpack(renew)) end
return out
