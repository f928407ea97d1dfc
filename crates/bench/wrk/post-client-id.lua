-- wrk script: POST /transaction with the client's own id in every body (a fresh random UUID),
-- as the client app whose key is in DEV_API_KEY. This is the path clients take: the producer
-- must find out whether each id is already known. The same body as the Node/BullMQ peer's
-- comparison script, so both can be driven alike.
-- DEV_API_KEY=txk_… wrk -t1 -c32 -d12s --latency -s crates/bench/wrk/post-client-id.lua http://127.0.0.1:3100/transaction
local key = os.getenv("DEV_API_KEY")
if key == nil or key == "" then
  error("DEV_API_KEY must hold the client app's API key")
end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local function uuid()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
request = function()
  return wrk.format(nil, "/transaction", nil, '{"id":"' .. uuid() .. '","amount":1250,"currency":"EUR"}')
end
local refused = 0
response = function(status) if status ~= 201 then refused = refused + 1 end end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non201=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, refused))
end
