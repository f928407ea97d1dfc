local script_started_ms
local function redis_now_ms()
  if not script_started_ms then
    local t = redis.call('TIME')
    script_started_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return script_started_ms
end
