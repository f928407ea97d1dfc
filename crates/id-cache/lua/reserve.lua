if redis_now_ms() > tonumber(deadline_ms) then
  return {2}
end
-- Known: the id has an entry (an owner: its row exists; a status: an outcome was reported), or
-- its `create` job is still held by the queue, whose payload is what was accepted.
local cached = redis.call('HMGET', entry, 'a', 'c', 's', 'o')
local held = held_payload(job_id)
if cached[3] or cached[4] or held then
  return {0, cached[1], cached[2], cached[3], cached[4], held}
end
-- The owner's token bucket (rate_per_s 0: unlimited): a new id takes a token; without one,
-- nothing is reserved and the answer says when the next token comes.
local rate = tonumber(rate_per_s)
if rate > 0 then
  local now, cap = redis_now_ms(), tonumber(burst)
  local held_tokens = redis.call('HMGET', bucket, 't', 'ts')
  local tokens = tonumber(held_tokens[1]) or cap
  local since = tonumber(held_tokens[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - since) * rate / 1000)
  if tokens < 1 then
    return {3, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', bucket, 't', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', bucket, math.ceil(cap * 1000 / rate) + 1000)
end
-- The held job is the reservation: no entry until the row exists.
push_this_job()
return {1}
