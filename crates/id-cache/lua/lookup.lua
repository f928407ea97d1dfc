local cached = redis.call('HMGET', entry, 'a', 'c', 's', 'o')
return {cached[1], cached[2], cached[3], cached[4], held_payload(create_job)}
