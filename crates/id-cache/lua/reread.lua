local cached = redis.call('HMGET', KEYS[1], 'a', 'c', 's', 'o')
local past = 0
if redis_now_ms() > tonumber(ARGV[1]) then past = 1 end
return {cached[1], cached[2], cached[3], past, cached[4]}
