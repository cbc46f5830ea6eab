-- Leases. A token is "<attempt>-<16 hex digits>": the attempt number plus a nonce, so a Redis
-- that was rolled back (a restore, a failover to a lagging replica) never hands out a token
-- twice. The nonce cannot come from math.random alone: Redis seeds Lua's generator the same way
-- at every start, so a restored server would draw the same numbers again. It is the SHA-1 of
-- the claim's client-made random id, the job's place in that claim and the claim's time, with
-- math.random mixed in. A lease is current while the job is active, the token matches exactly
-- and now < deadline_ms: a lease whose deadline has passed is lost even before any reaper runs.
local function new_token(attempt, claim_id, index, now)
  local salt = claim_id .. ":" .. index .. ":" .. string.format("%d", now) .. ":" .. math.random()
  return attempt .. "-" .. string.sub(redis.sha1hex(salt), 1, 16)
end

local function lease_current(job, token, now)
  return job ~= nil and job.state == STATE.active and job.token == token and now < job.deadline_ms
end

-- mark_started: the worker reports that the lease's handler began `ago_ms` ago (-1: it has
-- not). The first report sets started_ms (never before the lease began) and puts the job in
-- the running set, which end_lease empties; later reports change nothing.
local function mark_started(plan, id, job, ago_ms)
  if ago_ms < 0 or job.started_ms > 0 then return end
  job.started_ms = math.max(job.leased_ms, plan.now - ago_ms, 1)
  plan_zset(plan, plan.keys.running, id, job.started_ms)
end
