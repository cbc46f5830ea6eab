-- retry_delay: the delay before attempt `attempt + 1`, after attempt `attempt` failed:
-- min(backoff_max_ms, backoff_ms * 2^(attempt - 1)), of which a share jitter_pm/1000 is drawn at
-- random ("equal jitter" when jitter_pm = 500), so retries of many jobs do not stampede together.
-- scheduler/_policy.py computes the same bounds for tests and documentation.
local function retry_delay(job)
  local exponent = math.min(math.max(job.attempt - 1, 0), 60)
  local delay = math.min(job.backoff_max_ms, job.backoff_ms * math.pow(2, exponent))
  local spread = math.floor(delay * job.jitter_pm / 1000)
  if spread > 0 then
    delay = delay - spread + math.random(0, spread)
  end
  return math.floor(delay)
end
