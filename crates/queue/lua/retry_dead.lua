-- Move dead jobs back to ready with a fresh delivery count. ARGV: the job ids.
-- Returns how many were dead and are now waiting (an id no longer dead is skipped).
local moved = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', dead, id) == 1 then
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
