-- The row of an id exists now: its entry holds what was accepted, for the margin. A status
-- already there (an outcome reported before the row) is kept.
local entry, amount, currency, owner, margin_ms = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', entry, 'a', amount, 'c', currency, 'o', owner)
redis.call('HSETNX', entry, 's', 'pending')
redis.call('PEXPIRE', entry, margin_ms)
return 0
