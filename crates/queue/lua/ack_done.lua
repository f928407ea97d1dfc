-- Acknowledge successful deliveries. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: 1 recent-list cap, then pairs (job id, delivery token).
-- A delivery is accepted only if it still holds the lease with the same token (fencing).
-- Returns one 1 (accepted) / 0 (stale, refused) per pair, in order.
local cap = tonumber(ARGV[1])
local ids, tokens = {}, {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
end
local current = redis.call('HMGET', KEYS[5], unpack(ids))
local leased = redis.call('ZMSCORE', KEYS[3], unpack(ids))
local accepted, out = {}, {}
for i, id in ipairs(ids) do
  if current[i] == tokens[i] and leased[i] then
    accepted[#accepted + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #accepted > 0 then
  -- Done jobs leave nothing behind but a counter and a capped list of recent ids.
  redis.call('ZREM', KEYS[3], unpack(accepted))
  redis.call('HDEL', KEYS[4], unpack(accepted))
  redis.call('HDEL', KEYS[5], unpack(accepted))
  redis.call('HINCRBY', KEYS[9], 'done', #accepted)
  redis.call('LPUSH', KEYS[10], unpack(accepted))
  redis.call('LTRIM', KEYS[10], 0, cap - 1)
end
return out
