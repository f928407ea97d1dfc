-- The id's status: its entry's, or pending while its `create` job is held without one.
local status = redis.call('HGET', entry, 's')
local fresh = not status
if fresh and held_payload(create_job) then
  status = 'pending'
end
if status ~= expected then
  return 0
end
redis.call('HSET', entry, 's', new)
if fresh then
  -- Only a status: what was accepted stays in the held job until the row exists.
  redis.call('PEXPIRE', entry, ttl_ms)
end
return 1
