-- Dead jobs after a cursor, oldest first: those that died at or before ARGV[3] (ms) and after
-- (ARGV[1] ms, ARGV[2] id) in (death time, id) order. ARGV[4]: most to return.
-- Returns {{id, dead at ms, deliveries, error, payload}, ...}.
local from, after_id, before, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out, offset = {}, 0
while #out < limit do
  local rows = redis.call('ZRANGEBYSCORE', dead, from, before, 'WITHSCORES', 'LIMIT', offset, limit)
  if #rows == 0 then
    break
  end
  for i = 1, #rows, 2 do
    local id, at = rows[i], tonumber(rows[i + 1])
    if #out < limit and (at > from or id > after_id) then
      out[#out + 1] = {
        id,
        at,
        tonumber(redis.call('HGET', deliveries, id)) or 0,
        redis.call('HGET', errors, id) or '',
        redis.call('HGET', payloads, id) or '',
      }
    end
  end
  offset = offset + #rows / 2
end
return out
