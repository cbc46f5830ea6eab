-- now_ms, test build: Redis TIME, then the queue's test clock (scheduler.testing), a STRING that
-- the test build appends as the last KEYS slot of every script that reads the time: "+N" moves
-- the clock N ms ahead, "=N" pins it at N ms. scheduler/_scripts.py inlines this file instead of
-- lib/now.lua only in TEST_BUILD; production scripts neither take nor read a clock key. (The one
-- helper that reads KEYS: the slot exists only in the test build, after the header's slots.)
local function now_ms()
  local clock_key = KEYS[#KEYS]
  local t = redis.call("TIME")
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local pin = redis.call("GET", clock_key)
  if pin then
    local sign, amount = string.match(pin, "^([+=])(%d+)$")
    if sign == "+" then
      now = now + tonumber(amount)
    elseif sign == "=" then
      now = tonumber(amount)
    end
  end
  return now
end
