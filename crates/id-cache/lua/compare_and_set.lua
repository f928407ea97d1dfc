local entry, expected, new = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', entry, 's') == expected then
  redis.call('HSET', entry, 's', new)
  return 1
end
return 0
