-- The moves of a job between the sets of its states, planned (lib/plan.lua). Each takes the
-- job out of the set its current state names (none for a new job), puts it into the set of its
-- next state, and saves its record: a job is always in exactly one set, the one its record names.
local SET_OF_STATE = {
  waiting = "ready", delayed = "delayed", active = "active", completed = "completed",
  dead = "dead", cancelled = "cancelled",
}

-- The key of the ZSET that holds the jobs of `state`.
local function state_set(plan, state)
  return plan.keys[SET_OF_STATE[state]]
end

local function job_save(plan, id, job)
  plan_hash(plan, plan.keys.meta, id, job_encode(job))
end

local function leave_set(plan, id, job)
  local state = job.state
  if state ~= nil then plan_zset(plan, plan.keys[SET_OF_STATE[state]], id, nil) end
end

-- to_waiting: into the ready set, behind every job that became ready before it; a hand-back
-- (`front`) goes before every other job of its priority. One wake token for it.
local function to_waiting(plan, id, job, front)
  leave_set(plan, id, job)
  job.state = STATE.waiting
  job.ready_ms = plan.now
  local seq = 0
  if not front then seq = plan_seq(plan) end
  plan_zset(plan, plan.keys.ready, id, ready_score(job.priority, seq))
  plan.wake = plan.wake + 1
  job_save(plan, id, job)
end

-- to_delayed: into the delayed set until `run_at` (server ms).
local function to_delayed(plan, id, job, run_at)
  leave_set(plan, id, job)
  job.state = STATE.delayed
  job.ready_ms = run_at
  plan_zset(plan, plan.keys.delayed, id, run_at)
  job_save(plan, id, job)
end

-- to_active: leased; in the active set scored by its lease deadline.
local function to_active(plan, id, job, deadline)
  leave_set(plan, id, job)
  job.state = STATE.active
  job.deadline_ms = deadline
  plan_zset(plan, plan.keys.active, id, deadline)
  job_save(plan, id, job)
end

-- finish: completed, dead or cancelled for good; the set's score is when the record expires
-- (keep_result_ms for a completed job, keep_dead_ms for the others), so trimming takes the
-- expired ones first.
local function finish(plan, id, job, state)
  leave_set(plan, id, job)
  local keep = job.keep_dead_ms
  if state == STATE.completed then keep = job.keep_result_ms end
  job.state = state
  job.deadline_ms = 0
  job.finished_ms = plan.now
  plan_zset(plan, state_set(plan, state), id, plan.now + keep)
  job_save(plan, id, job)
end

-- set_aside: a record found in the ZSET `set_key` that this code cannot read. A corrupt one
-- leaves that set for the quarantine (scored by when), its reason in the error hash; trimming
-- never touches the quarantine. A newer one is left where it is, untouched, and noted in the
-- unreadable ZSET (scored by when this code last met it), which stats counts.
local function set_aside(plan, id, why, set_key, where)
  if why == UNREADABLE.corrupt then
    plan_zset(plan, set_key, id, nil)
    plan_zset(plan, plan.keys.quarantine, id, plan.now)
    plan_hash(plan, plan.keys.error, id, "quarantined: a corrupt record, found " .. where)
  else
    plan_zset(plan, plan.keys.unreadable, id, plan.now)
  end
end
