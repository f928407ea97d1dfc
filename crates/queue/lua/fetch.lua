-- Fetch and lease at most one batch of jobs. ARGV: 1 now (ms), 2 batch size, 3 lease (ms),
-- 4 max deliveries.
-- Returns {jobs, next_wake}: jobs = {{id, delivery count, payload}, ...};
-- next_wake = the earliest due or lease-expiry time in ms when no job was found, else -1.
local now = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local max_deliveries = tonumber(ARGV[4])

-- Paused (`pause.lua`): take nothing, and look again within a second.
if redis.call('HGET', stats, 'paused') then
  return {{}, now + 1000}
end

-- Every step is bounded by the batch size, so a backlog of any size drains.
local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, batch)
if #due > 0 then
  redis.call('ZREM', scheduled, unpack(due))
  redis.call('RPUSH', ready, unpack(due))
end
local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, batch)
if #expired > 0 then
  -- A lease that ran out belongs to a crashed or stuck worker: deliver again, first.
  redis.call('ZREM', leased, unpack(expired))
  redis.call('LPUSH', ready, unpack(expired))
end

local ids = redis.call('LPOP', ready, batch)
if not ids then
  -- Idle: drop stale wake-ups and tell the worker how long it may sleep.
  redis.call('DEL', wakeups)
  local wake = -1
  local s = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
  if s[2] then wake = tonumber(s[2]) end
  local l = redis.call('ZRANGE', leased, 0, 0, 'WITHSCORES')
  if l[2] and (wake < 0 or tonumber(l[2]) < wake) then wake = tonumber(l[2]) end
  return {{}, wake}
end

local bodies = redis.call('HMGET', payloads, unpack(ids))
local counts = redis.call('HMGET', deliveries, unpack(ids))
local jobs, counted, leases = {}, {}, {}
for i, id in ipairs(ids) do
  -- An id without a payload was purged while it waited: nothing to run.
  if bodies[i] then
    local n = (tonumber(counts[i]) or 0) + 1
    counted[#counted + 1] = id
    counted[#counted + 1] = n
    if n > max_deliveries then
      redis.call('ZADD', dead, now, id)
      redis.call('HSET', errors, id, 'delivered ' .. n .. ' times without an outcome')
      redis.call('HINCRBY', stats, 'dead', 1)
    else
      leases[#leases + 1] = now + lease
      leases[#leases + 1] = id
      jobs[#jobs + 1] = {id, n, bodies[i]}
    end
  end
end
if #counted > 0 then redis.call('HSET', deliveries, unpack(counted)) end
if #leases > 0 then redis.call('ZADD', leased, unpack(leases)) end

-- More work is waiting than this worker took: let another idle worker start on it.
if #ids == batch and redis.call('LLEN', ready) > 0 then
  signal()
end
return {jobs, -1}
