-- One page of a queue's jobs in one state, after a cursor. ARGV: 1 state ('waiting',
-- 'scheduled', 'running' or 'failed'), 2 cursor time (ms), 3 cursor id ('' = from the start),
-- 4 most to return.
-- Waiting jobs come in the order they will start; the others by their time (due, lease expiry,
-- death), then id. A waiting cursor whose job has left the list starts again at the head: the
-- list is first in, first out, so every job before it has left too.
-- Returns {{id, time ms (-1 for waiting), deliveries, error, payload}, ...}.
local state, from, after_id, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])

local function row(id, at)
  return {
    id,
    at,
    tonumber(redis.call('HGET', deliveries, id)) or 0,
    redis.call('HGET', errors, id) or '',
    redis.call('HGET', payloads, id) or '',
  }
end

local out = {}
if state == 'waiting' then
  local start = 0
  if after_id ~= '' then
    local at = redis.call('LPOS', ready, after_id)
    if at then start = at + 1 end
  end
  for _, id in ipairs(redis.call('LRANGE', ready, start, start + limit - 1)) do
    out[#out + 1] = row(id, -1)
  end
  return out
end

local sets = { scheduled = scheduled, running = leased, failed = dead }
local set = sets[state]
if not set then
  return redis.error_reply('unknown state ' .. state)
end
local offset = 0
while #out < limit do
  local rows = redis.call('ZRANGEBYSCORE', set, from, '+inf', 'WITHSCORES', 'LIMIT', offset, limit)
  if #rows == 0 then
    break
  end
  for i = 1, #rows, 2 do
    local id, at = rows[i], tonumber(rows[i + 1])
    if #out < limit and (at > from or id > after_id) then
      out[#out + 1] = row(id, at)
    end
  end
  offset = offset + #rows / 2
end
return out
