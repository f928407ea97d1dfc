-- The queue's throughput samples. ARGV[1] = '1': first record the counters for the current
-- 10 s bucket, unless a sample of it exists (every consumer samples; the first one counts),
-- and forget samples older than ARGV[2] buckets.
-- Returns {now ms, done, failed, samples}: the counters now (failed = failed attempts,
-- retried or dead-lettered) and samples = {"bucket:done:failed", ...}, oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = redis.call('HMGET', stats, 'done', 'retried', 'dead')
local done = tonumber(c[1]) or 0
local failed = (tonumber(c[2]) or 0) + (tonumber(c[3]) or 0)
if ARGV[1] == '1' then
  local bucket = math.floor(now / 10000)
  if #redis.call('ZRANGEBYSCORE', throughput, bucket, bucket) == 0 then
    redis.call('ZADD', throughput, bucket, bucket .. ':' .. done .. ':' .. failed)
    redis.call('ZREMRANGEBYSCORE', throughput, '-inf', bucket - tonumber(ARGV[2]))
  end
end
return {now, done, failed, redis.call('ZRANGE', throughput, 0, -1)}
