-- Move one dead job back to ready with a fresh delivery count. ARGV: 1 job id.
-- Returns 1 if it was dead and is now waiting, else 0.
local id = ARGV[1]
if redis.call('ZREM', dead, id) == 0 then
  return 0
end
redis.call('HDEL', errors, id)
redis.call('HDEL', deliveries, id)
redis.call('RPUSH', ready, id)
signal()
return 1
