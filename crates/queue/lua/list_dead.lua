-- List dead jobs, newest first. ARGV: 1 offset, 2 limit.
-- Returns {{id, dead at ms, deliveries, error, payload}, ...}.
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local rows = redis.call('ZREVRANGE', dead, offset, offset + limit - 1, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = job_row(rows[i], tonumber(rows[i + 1]))
end
return out
