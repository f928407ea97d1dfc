-- Extend the leases of deliveries still held. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: 1 new expiry (ms), then pairs (job id, delivery token).
-- Returns one 1 (renewed) / 0 (lost: reclaimed or re-delivered meanwhile) per pair.
local ids, tokens = {}, {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
end
local current = redis.call('HMGET', KEYS[5], unpack(ids))
local leased = redis.call('ZMSCORE', KEYS[3], unpack(ids))
local renew, out = {}, {}
for i, id in ipairs(ids) do
  if current[i] == tokens[i] and leased[i] then
    renew[#renew + 1] = ARGV[1]
    renew[#renew + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #renew > 0 then redis.call('ZADD', KEYS[3], 'XX', unpack(renew)) end
return out
