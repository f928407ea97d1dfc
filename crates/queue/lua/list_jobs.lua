-- One page of a queue's jobs in one state, after a cursor. ARGV: 1 state ('waiting',
-- 'scheduled', 'running' or 'failed'), 2 cursor time (ms), 3 cursor id ('' = from the start),
-- 4 most to return.
-- Waiting jobs come in the order they will start; the others by their time (due, lease expiry,
-- death), then id. A waiting cursor whose job has left the list starts again at the head: the
-- list is first in, first out, so every job before it has left too.
-- Returns {{id, time ms (-1 for waiting), deliveries, error, payload}, ...}.
local state, from, after_id, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])

local out = {}
if state == 'waiting' then
  local start = 0
  if after_id ~= '' then
    local at = redis.call('LPOS', ready, after_id)
    if at then start = at + 1 end
  end
  for _, id in ipairs(redis.call('LRANGE', ready, start, start + limit - 1)) do
    out[#out + 1] = job_row(id, -1)
  end
  return out
end

local sets = { scheduled = scheduled, running = leased, failed = dead }
local set = sets[state]
if not set then
  return redis.error_reply('unknown state ' .. state)
end
return rows_after(set, from, after_id, '+inf', limit)
