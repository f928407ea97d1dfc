-- wrk script: POST /transaction with a body without an id (the producer makes each id), as the
-- client app whose key is in DEV_API_KEY.
-- DEV_API_KEY=txk_… wrk -t1 -c32 -d12s --latency -s crates/bench/wrk/post.lua http://127.0.0.1:3100/transaction
local key = os.getenv("DEV_API_KEY")
if key == nil or key == "" then
  error("DEV_API_KEY must hold the client app's API key")
end
wrk.method = "POST"
wrk.body = '{"amount":100,"currency":"EUR"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
