-- now_ms: the queue's clock, Redis TIME, read once at the start of every script that needs it.
-- Only this file reads TIME. The test build of the scripts (scheduler/_scripts.py) inlines
-- lib/now_test.lua instead, which can move the clock; production scripts never read a clock key.
local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
