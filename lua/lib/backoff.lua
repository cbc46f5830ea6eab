-- retry_delay: the delay before attempt `attempt + 1`, after attempt `attempt` failed:
-- min(backoff_max_ms, backoff_ms * 2^(attempt - 1)), of which a share jitter_pm/1000 is drawn at
-- random ("equal jitter" when jitter_pm = 500), so retries of many jobs do not stampede together.
-- The draw comes from the SHA-1 of the lease token, not from math.random, which takes C ints and
-- fails (or wraps) for a spread of 2^31 ms or more: 52 bits of the hash, taken modulo the spread
-- + 1, are exact in a double for every spread up to MAX_MS, and a repeated call draws the same.
-- scheduler/_policy.py computes the same delay, for the tests and the documentation.
local function retry_delay(job)
  local exponent = math.min(math.max(job.attempt - 1, 0), 60)
  local delay = math.floor(math.min(job.backoff_max_ms, job.backoff_ms * math.pow(2, exponent)))
  local spread = math.floor(delay * job.jitter_pm / 1000)
  if spread > 0 then
    local draw = tonumber(string.sub(redis.sha1hex(job.token .. ":retry"), 1, 13), 16)
    delay = delay - spread + draw % (spread + 1)
  end
  return delay
end
