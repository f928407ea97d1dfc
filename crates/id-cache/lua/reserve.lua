if redis_now_ms() > tonumber(deadline_ms) then
  return {2}
end
local cached = redis.call('HMGET', entry, 'a', 'c', 's', 'o')
if cached[3] then
  return {0, cached[1], cached[2], cached[3], cached[4]}
end
redis.call('HSET', entry, 'a', amount, 'c', currency, 's', 'pending', 'o', owner)
redis.call('PEXPIRE', entry, ttl_ms)
push_this_job()
return {1}
