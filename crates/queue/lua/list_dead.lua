-- List dead jobs, newest first. KEYS: the queue's 10 keys (see push_lib.lua).
-- ARGV: 1 offset, 2 limit. Returns {{id, dead at ms, deliveries, error, payload}, ...}.
local rows = redis.call('ZREVRANGE', KEYS[6], tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local id = rows[i]
  out[#out + 1] = {
    id,
    tonumber(rows[i + 1]),
    tonumber(redis.call('HGET', KEYS[5], id)) or 0,
    redis.call('HGET', KEYS[7], id) or '',
    redis.call('HGET', KEYS[4], id) or '',
  }
end
return out
