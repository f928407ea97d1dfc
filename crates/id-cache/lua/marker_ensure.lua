local token = redis.call('GET', KEYS[1])
if token then
  return {1, token}
end
redis.call('SET', KEYS[1], ARGV[1])
return {0, ARGV[1]}
