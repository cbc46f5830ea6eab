-- end_lease: the one way a lease ends. complete (to completed), fail (to waiting or delayed for
-- a retry, or to dead), release (back to waiting, first in line) and the expiry of a lease (in
-- claim and in reap: to waiting, or to dead at max_attempts) all call it, and nothing else ends
-- a lease. Whatever a job holds for the length of one lease is given back here and only here:
-- today its place in the running set (a lease whose handler began); a feature that holds
-- something per lease (a group slot, a uniqueness key, a counter, an event) adds it here.
local function end_lease(plan, id, job, outcome, next_state, run_at)
  job.outcome = outcome
  job.deadline_ms = 0
  if job.started_ms > 0 then plan_zset(plan, plan.keys.running, id, nil) end
  if next_state == STATE.waiting then
    to_waiting(plan, id, job, outcome == OUTCOME.returned)
  elseif next_state == STATE.delayed then
    to_delayed(plan, id, job, run_at)
  else
    finish(plan, id, job, next_state)
  end
end
