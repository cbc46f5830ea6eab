-- Leases. A token is "<attempt>-<16 hex digits>": the attempt number plus a random nonce, so a
-- Redis that was rolled back (a restore, a failover to a lagging replica) never hands out a
-- token twice. A lease is current while the job is active, the token matches exactly and
-- now < deadline_ms: a lease whose deadline has passed is lost even before any reaper runs.
local function new_token(attempt)
  return string.format("%d-%04x%04x%04x%04x", attempt, math.random(0, 65535),
    math.random(0, 65535), math.random(0, 65535), math.random(0, 65535))
end

local function lease_current(job, token, now)
  return job ~= nil and job.state == STATE.active and job.token == token and now < job.deadline_ms
end
