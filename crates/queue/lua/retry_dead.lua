-- Move dead jobs back to ready with a fresh delivery count. ARGV: pairs of job id and the
-- payload to run it with ('' = keep its own).
-- Returns how many were dead and are now waiting (an id no longer dead is skipped).
local moved = 0
for i = 1, #ARGV, 2 do
  local id, payload = ARGV[i], ARGV[i + 1]
  if redis.call('ZREM', dead, id) == 1 then
    if payload ~= '' then
      redis.call('HSET', payloads, id, payload)
    end
    redis.call('HDEL', errors, id)
    redis.call('HDEL', deliveries, id)
    redis.call('RPUSH', ready, id)
    moved = moved + 1
  end
end
if moved > 0 then
  signal()
end
return moved
