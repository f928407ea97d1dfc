-- The id's status: its entry's; pending for an entry without one (written with its new row:
-- it has an owner) or while only its held `create` job knows the id.
local got = redis.call('HMGET', entry, 's', 'o')
local status = got[1]
local fresh = not got[1] and not got[2]
if not status and (not fresh or held_payload(create_job)) then
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
