local entry, status = KEYS[1], ARGV[1]
if redis.call('EXISTS', entry) == 1 then
  redis.call('HSET', entry, 's', status)
end
return 0
