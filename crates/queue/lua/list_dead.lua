-- List dead jobs, newest first. ARGV: 1 offset, 2 limit.
-- Returns {{id, dead at ms, deliveries, error, payload}, ...}.
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local rows = redis.call('ZREVRANGE', dead, offset, offset + limit - 1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local id = rows[i]
  out[#out + 1] = {
    id,
    tonumber(rows[i + 1]),
    tonumber(redis.call('HGET', deliveries, id)) or 0,
    redis.call('HGET', errors, id) or '',
    redis.call('HGET', payloads, id) or '',
  }
end
return out
