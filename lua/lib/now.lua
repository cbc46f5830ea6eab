-- now_ms: the queue's clock, read once at the start of every script from Redis TIME.
-- The optional STRING at clock_key is the documented test-only path (scheduler.testing):
-- "+N" moves this queue's clock N ms ahead, "=N" pins it at N ms. Production never writes it.
local function now_ms(clock_key)
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
