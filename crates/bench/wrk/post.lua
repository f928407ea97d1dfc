-- wrk script: POST /transaction with a body without an id (the producer makes each id).
-- wrk -t1 -c32 -d12s --latency -s crates/bench/wrk/post.lua http://127.0.0.1:3100/transaction
wrk.method = "POST"
wrk.body = '{"amount":100,"currency":"EUR"}'
wrk.headers["Content-Type"] = "application/json"
