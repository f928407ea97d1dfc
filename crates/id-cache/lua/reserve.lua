if redis_now_ms() > tonumber(deadline_ms) then
  return {2}
end
-- Known: the id has an entry (an owner: its row exists; a status alone: an outcome was reported
-- while its job waited), or its `create` job is still held by the queue, whose payload is what
-- was accepted.
local cached = redis.call('HMGET', entry, 'a', 'c', 's', 'o')
local function known(held)
  return {0, cached[1], cached[2], cached[3], cached[4], held}
end
if cached[4] then
  return known(false)
end
if cached[3] then
  return known(held_payload(job_id))
end
-- The owner's token bucket (rate_per_s 0: unlimited): a new id takes a token; without one,
-- nothing is reserved and the answer says when the next token comes.
local rate = tonumber(rate_per_s)
if rate > 0 then
  local held = held_payload(job_id)
  if held then
    return known(held)
  end
  local now, cap = redis_now_ms(), tonumber(burst)
  local bucket_held = redis.call('HMGET', bucket, 't', 'ts')
  local tokens = tonumber(bucket_held[1]) or cap
  local since = tonumber(bucket_held[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - since) * rate / 1000)
  if tokens < 1 then
    return {3, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', bucket, 't', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', bucket, math.ceil(cap * 1000 / rate) + 1000)
end
-- The pushed job is the reservation: no entry until the row exists. A job already held (the
-- push does nothing) is the id's, known by it.
if push_this_job() == 1 then
  return {1}
end
return known(held_payload(job_id))
