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

-- The running set holds the active jobs whose handler began, scored like the active set by
-- their lease deadline, so stats can tell running jobs from leased ones waiting in a worker.
-- note_started: the worker reports that the lease's handler began `ago_ms` ago (-1: it has
-- not). The first report sets started_ms (never before the lease began); later reports change
-- nothing. True when this report is the first.
local function note_started(job, ago_ms, now)
  if ago_ms < 0 or job.started_ms > 0 then return false end
  job.started_ms = math.max(job.leased_ms, now - ago_ms, 1)
  return true
end

-- mark_started: note_started, and the job joins the running set (which end_lease empties).
local function mark_started(plan, id, job, ago_ms)
  if note_started(job, ago_ms, plan.now) then
    plan_zset(plan, plan.keys.running, id, job.deadline_ms)
  end
end

-- extend_lease: a heartbeat of a current lease: its new deadline, in the active set and, for a
-- job whose handler began, in the running set; and the start the worker reports, if any.
local function extend_lease(plan, id, job, deadline, ago_ms)
  job.deadline_ms = deadline
  plan_zset(plan, plan.keys.active, id, deadline)
  if job.started_ms > 0 then plan_zset(plan, plan.keys.running, id, deadline) end
  mark_started(plan, id, job, ago_ms)
  plan_hash(plan, plan.keys.meta, id, job_encode(job))
end

-- tidy_running: up to `limit` running entries whose lease deadline has passed. A job still
-- leased and started (its lease was extended) gets its current deadline; any other entry is
-- dropped: one left behind by an older version of this code, which did not know the set, or
-- by a lease that ended without this code (a record restored from a backup, say).
local function tidy_running(plan, running_key, limit)
  local due = redis.call("ZRANGEBYSCORE", running_key, "-inf", plan.now, "LIMIT", 0, limit)
  local jobs = jobs_read(plan.keys.meta, due)
  for _, id in ipairs(due) do
    local job = jobs[id]
    local keep = job ~= nil and job.state == STATE.active and job.started_ms > 0
      and job.deadline_ms > plan.now
    plan_zset(plan, running_key, id, keep and job.deadline_ms or nil)
  end
  return #due
end
