-- Pause (ARGV[1] = '1') or resume ('0') the queue for every worker: while paused, fetches take
-- nothing. A resume wakes the idle workers. Returns 1.
if ARGV[1] == '1' then
  redis.call('HSET', stats, 'paused', 1)
else
  redis.call('HDEL', stats, 'paused')
  signal()
end
return 1
