-- Push one job. ARGV: 1 job id, 2 payload, 3 due (ms since epoch; <= now means ready), 4 now (ms).
-- Returns 1 if pushed, 0 if the id was already held.
local id, payload, due, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
return push_job(id, payload, due, now)
