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

-- Jobs this script stored and has yet to queue: ids for the ready list, and (due, id) pairs
-- for the schedule. `enqueue_staged` queues them with one command each.
local staged_ready, staged_due = {}, {}

-- The payloads of a batch's jobs (a hook's, `push_jobs`'), read with one command before the
-- first (`prefetch_held`; false: not held) and kept up to date by `store_job`, which stages the
-- payloads it stores for `enqueue_staged` to write with one command: per job, no command at
-- all. Nil in other scripts.
local known_payloads = nil
local staged_payloads = {}

-- Stages a stored job: ready now, or scheduled at `due` (ms).
local function stage(id, due, now)
  if due > now then
    staged_due[#staged_due + 1] = due
    staged_due[#staged_due + 1] = id
  else
    staged_ready[#staged_ready + 1] = id
  end
end

-- Queues the staged jobs. Idle workers are woken once: when the ready list was empty (only
-- an empty list can have idle workers behind it), or when a staged job is now the earliest
-- due one (idle workers sleep until the earliest).
local function enqueue_staged()
  local wake = false
  if #staged_payloads > 0 then
    redis.call('HSET', payloads, unpack(staged_payloads))
    staged_payloads = {}
  end
  if #staged_ready > 0 then
    wake = redis.call('RPUSH', ready, unpack(staged_ready)) == #staged_ready
  end
  if #staged_due > 0 then
    redis.call('ZADD', scheduled, unpack(staged_due))
    local first = redis.call('ZRANGE', scheduled, 0, 0)[1]
    for i = 2, #staged_due, 2 do
      if staged_due[i] == first then
        wake = true
      end
    end
  end
  if wake then
    signal()
  end
  staged_ready, staged_due = {}, {}
end

-- Schedules job `id` at `due` (ms).
local function schedule(id, due)
  staged_due[#staged_due + 1] = due
  staged_due[#staged_due + 1] = id
  enqueue_staged()
end

-- Reads whether each of `ids` is held, with one command, for `held_payload` and `store_job`.
local function prefetch_held(ids)
  local held = redis.call('HMGET', payloads, unpack(ids))
  known_payloads = {}
  for i, id in ipairs(ids) do
    known_payloads[id] = held[i]
  end
end

-- The payload of job `id` while the queue holds it (waiting, scheduled, running or dead), or
-- false: a caller's script can treat a held job as a record of its own.
local function held_payload(id)
  if known_payloads and known_payloads[id] ~= nil then
    return known_payloads[id]
  end
  return redis.call('HGET', payloads, id)
end

-- Stores one job unless its id is already held (waiting, scheduled, running or dead) and
-- stages it; the caller queues it with `enqueue_staged`. Returns 1 when stored, 0 when the id
-- was already there (the push is then a no-op).
local function store_job(id, payload, due, now)
  if known_payloads then
    if held_payload(id) then
      return 0
    end
    known_payloads[id] = payload
    staged_payloads[#staged_payloads + 1] = id
    staged_payloads[#staged_payloads + 1] = payload
  elseif redis.call('HSETNX', payloads, id, payload) == 0 then
    return 0
  end
  stage(id, due, now)
  return 1
end

-- Pushes many jobs with a handful of commands in all: an id already held, or repeated within
-- the call, is skipped. Returns one 1 (pushed) / 0 (already held) per job, in order.
local function push_jobs(ids, bodies, dues, now)
  prefetch_held(ids)
  local out = {}
  for i, id in ipairs(ids) do
    out[i] = store_job(id, bodies[i], dues[i], now)
  end
  enqueue_staged()
  return out
end

-- What a listing answers for job `id`: {id, <fields>, deliveries, last error, payload}, the
-- caller's fields (a state, a time) after the id.
local function job_row(id, ...)
  local row = { id, ... }
  row[#row + 1] = tonumber(redis.call('HGET', deliveries, id)) or 0
  row[#row + 1] = redis.call('HGET', errors, id) or ''
  row[#row + 1] = redis.call('HGET', payloads, id) or ''
  return row
end

-- At most `limit` rows of the jobs in zset `set` scored up to `to`, after the cursor (score
-- `from`, id `after_id`), in (score, id) order: {{id, score, deliveries, error, payload}, ...}.
local function rows_after(set, from, after_id, to, limit)
  local out, offset = {}, 0
  while #out < limit do
    local rows = redis.call('ZRANGEBYSCORE', set, from, to, 'WITHSCORES', 'LIMIT', offset, limit)
    if #rows == 0 then
      break
    end
    for i = 1, #rows, 2 do
      local id, at = rows[i], tonumber(rows[i + 1])
      if #out < limit and (at > from or id > after_id) then
        out[#out + 1] = job_row(id, at)
      end
    end
    offset = offset + #rows / 2
  end
  return out
end
