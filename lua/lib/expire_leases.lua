-- expire_leases: up to `limit` leases whose deadline has passed (deadline <= now, soonest first)
-- end. Each expiry already counted as an attempt when the lease was handed out, so a job with
-- attempts left waits again at once (it is offered again within lease + reaper interval), and a
-- job whose attempts are used up goes to the dead letters with the reason. Returns the number
-- requeued and the number dead.
local function expire_leases(plan, active_key, limit)
  local expired, jobs, unread = walk_set(plan.keys.meta, active_key, plan.now, limit)
  local requeued, dead = 0, 0
  for _, id in ipairs(expired) do
    local job = jobs[id]
    if unread[id] then
      set_aside(plan, id, unread[id], active_key, "in the active set")
    elseif job == nil or job.state ~= STATE.active then
      plan_zset(plan, active_key, id, nil)  -- a stray member with no active record
    elseif job.attempt >= job.max_attempts then
      plan_hash(plan, plan.keys.error, id, "lease expired on attempt " .. job.attempt .. " of "
        .. job.max_attempts .. " (worker " .. job.worker .. ")")
      end_lease(plan, id, job, OUTCOME.dead, STATE.dead)
      dead = dead + 1
    else
      end_lease(plan, id, job, OUTCOME.expired, STATE.waiting)
      requeued = requeued + 1
    end
  end
  return requeued, dead
end
