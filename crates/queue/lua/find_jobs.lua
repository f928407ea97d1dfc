-- Where each of the job ids in ARGV is. Returns one {id, state, time ms, deliveries, error,
-- payload} per id found, in order: state 'scheduled' (time: due), 'running' (lease expiry),
-- 'failed' (death), 'waiting' (time -1), or 'done' (among the recent done ids; nothing else is
-- kept of it). An id found nowhere is left out.
local out = {}
local done = redis.call('LRANGE', recent, 0, -1)
local is_done = {}
for _, id in ipairs(done) do is_done[id] = true end
for _, id in ipairs(ARGV) do
  local state, at
  for _, s in ipairs({ { 'scheduled', scheduled }, { 'running', leased }, { 'failed', dead } }) do
    local score = redis.call('ZSCORE', s[2], id)
    if score then
      state, at = s[1], tonumber(score)
      break
    end
  end
  if not state then
    if redis.call('HEXISTS', payloads, id) == 1 then
      state, at = 'waiting', -1
    elseif is_done[id] then
      state, at = 'done', -1
    end
  end
  if state then
    out[#out + 1] = job_row(id, state, at)
  end
end
return out
