-- Prepended to every script of the queue (and to callers' push hooks): the queue's keys by
-- name, and the rules every script shares. The keys arrive as KEYS[1..11], in this order (see
-- `Keys::in_script_order`), all under one hash tag.
local ready = KEYS[1]       -- list of job ids ready to run ("waiting"; KEDA scales on its length)
local scheduled = KEYS[2]   -- zset: job id -> due time (ms)
local leased = KEYS[3]      -- zset: job id -> lease expiry (ms)
local payloads = KEYS[4]    -- hash: job id -> payload
local deliveries = KEYS[5]  -- hash: job id -> delivery count (also the fencing token)
local dead = KEYS[6]        -- zset: job id -> when it died (ms)
local errors = KEYS[7]      -- hash: job id -> last error
local wakeups = KEYS[8]     -- list idle workers block on
local stats = KEYS[9]       -- hash of counters (done, retried, dead)
local recent = KEYS[10]     -- capped list of the ids of done jobs
local throughput = KEYS[11] -- zset: 10 s bucket -> "bucket:done:failed" counters then (`sample.lua`)

-- Wakes one idle worker. The list is trimmed so wake-ups nobody waited for cannot pile up.
local function signal()
  redis.call('LPUSH', wakeups, 1)
  redis.call('LTRIM', wakeups, 0, 7)
end

-- Fencing: for each i, whether delivery tokens[i] of job ids[i] still holds its lease (the job
-- is leased and has not been delivered again since). A delivery whose lease passed on to
-- another may neither ack nor renew.
local function holds(ids, tokens)
  local current = redis.call('HMGET', deliveries, unpack(ids))
  local held = redis.call('ZMSCORE', leased, unpack(ids))
  local out = {}
  for i = 1, #ids do
    out[i] = current[i] == tokens[i] and held[i] ~= false
  end
  return out
end

-- The ids of the deliveries that still hold their lease, and a 1 (held) / 0 (stale) per
-- delivery, in order: what every batched fencing script answers.
local function fenced(ids, tokens)
  local held = holds(ids, tokens)
  local kept, answers = {}, {}
  for i, id in ipairs(ids) do
    if held[i] then
      kept[#kept + 1] = id
      answers[i] = 1
    else
      answers[i] = 0
    end
  end
  return kept, answers
end

-- Splits ARGV[first..] (pairs of job id, delivery token) into a list of ids and one of tokens.
local function delivery_pairs(first)
  local ids, tokens = {}, {}
  for i = first, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
    tokens[#tokens + 1] = ARGV[i + 1]
  end
  return ids, tokens
end

-- Schedules job `id` at `due` (ms); a new earliest due job must wake the idle workers, who
-- sleep until the earliest one.
local function schedule(id, due)
  redis.call('ZADD', scheduled, due, id)
  if redis.call('ZRANGE', scheduled, 0, 0)[1] == id then
    signal()
  end
end

-- Stores a job unless its id is already held (waiting, scheduled, running or dead).
-- Returns 1 when pushed, 0 when the id was already there (the push is then a no-op).
local function push_job(id, payload, due, now)
  if redis.call('HSETNX', payloads, id, payload) == 0 then
    return 0
  end
  if due > now then
    schedule(id, due)
  elseif redis.call('RPUSH', ready, id) == 1 then
    -- Only an empty ready list can have idle workers behind it.
    signal()
  end
  return 1
end
