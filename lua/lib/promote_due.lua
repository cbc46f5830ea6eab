-- promote_due: up to `limit` delayed jobs whose run-at time has come (soonest first) become
-- waiting, entering the ready set now, behind the jobs already there (so FIFO order within a
-- priority is also ready_ms order, which stats.lua relies on). Returns the number promoted.
local function promote_due(plan, delayed_key, limit)
  local due, jobs, unread = walk_set(plan.keys.meta, delayed_key, plan.now, limit)
  local promoted = 0
  for _, id in ipairs(due) do
    local job = jobs[id]
    if unread[id] then
      set_aside(plan, id, unread[id], delayed_key, "in the delayed set")
    elseif job == nil or job.state ~= STATE.delayed then
      plan_zset(plan, delayed_key, id, nil)  -- a stray member with no delayed record
    else
      to_waiting(plan, id, job, false)
      promoted = promoted + 1
    end
  end
  return promoted
end
