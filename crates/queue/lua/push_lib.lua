-- Shared by every script that pushes jobs (push.lua, push_many.lua and callers' hooks).
-- KEYS (the queue's, in this order, all under one hash tag):
--   1 ready (list)   2 scheduled (zset, due ms)   3 leased (zset, lease expiry ms)
--   4 jobs (hash id -> payload)   5 deliveries (hash id -> delivery count)
--   6 dead (zset, ms)   7 errors (hash id -> last error)   8 signal (list)
--   9 stats (hash)   10 recent (list of done ids)

-- Wakes one idle worker. The list is trimmed so signals nobody waited for cannot pile up.
local function signal()
  redis.call('LPUSH', KEYS[8], 1)
  redis.call('LTRIM', KEYS[8], 0, 7)
end

-- Stores a job unless its id is already held (waiting, scheduled, running or dead).
-- Returns 1 when pushed, 0 when the id was already there (the push is then a no-op).
local function push_job(id, payload, due, now)
  if redis.call('HSETNX', KEYS[4], id, payload) == 0 then
    return 0
  end
  if due > now then
    redis.call('ZADD', KEYS[2], due, id)
    -- Idle workers sleep until the earliest due job; a new earliest one must wake them.
    if redis.call('ZRANGE', KEYS[2], 0, 0)[1] == id then
      signal()
    end
  elseif redis.call('RPUSH', KEYS[1], id) == 1 then
    -- Only an empty ready list can have idle workers behind it.
    signal()
  end
  return 1
end
