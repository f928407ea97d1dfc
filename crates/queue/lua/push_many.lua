-- Push many jobs in one round trip. ARGV: 1 now (ms), then triples (job id, payload, due ms).
-- Returns one 1/0 per job, in order (0 = the id was already held, or repeated in this call).
local now = tonumber(ARGV[1])
local ids, bodies, dues = {}, {}, {}
for i = 2, #ARGV, 3 do
  ids[#ids + 1] = ARGV[i]
  bodies[#bodies + 1] = ARGV[i + 1]
  dues[#dues + 1] = tonumber(ARGV[i + 2])
end
return push_jobs(ids, bodies, dues, now)
