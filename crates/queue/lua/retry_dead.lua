-- Move one dead job back to ready with a fresh delivery count. KEYS: the queue's 10 keys
-- (see push_lib.lua). ARGV: 1 job id. Returns 1 if it was dead and is now waiting, else 0.
local id = ARGV[1]
if redis.call('ZREM', KEYS[6], id) == 0 then
  return 0
end
redis.call('HDEL', KEYS[7], id)
redis.call('HDEL', KEYS[5], id)
redis.call('RPUSH', KEYS[1], id)
signal()
return 1
