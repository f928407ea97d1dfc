-- The row of an id exists now: its entry holds what was accepted, for the margin (one script, so
-- an entry never outlives a crash without its expiry). A status already there (an outcome
-- reported before the row) is kept; without one, the id is pending.
local entry, amount, currency, owner, margin_ms = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', entry, 'a', amount, 'c', currency, 'o', owner)
redis.call('PEXPIRE', entry, margin_ms)
return 0
