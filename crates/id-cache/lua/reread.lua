local cached = redis.call('HMGET', entry, 'a', 'c', 's', 'o')
local past = 0
if redis_now_ms() > tonumber(deadline_ms) then past = 1 end
return {past, cached[1], cached[2], cached[3], cached[4], held_payload(create_job)}
