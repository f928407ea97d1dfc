-- Dead jobs after a cursor, oldest first: those that died at or before ARGV[3] (ms) and after
-- (ARGV[1] ms, ARGV[2] id) in (death time, id) order. ARGV[4]: most to return.
-- Returns {{id, dead at ms, deliveries, error, payload}, ...}.
local from, after_id, before, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
return rows_after(dead, from, after_id, before, limit)
