-- Push many jobs in one round trip. ARGV: 1 now (ms), then triples (job id, payload, due ms).
-- Returns one 1/0 per job, in order (0 = the id was already held).
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  out[#out + 1] = push_job(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), now)
end
return out
