-- Bounded retention of finished records.

-- delete_job: every trace of a job goes: its record, payload, result and error, and its entry
-- in `set_key`.
local function delete_job(plan, id, set_key)
  plan_zset(plan, set_key, id, nil)
  for _, part in ipairs({"meta", "payload", "result", "error"}) do
    plan_hash(plan, plan.keys[part], id, nil)
  end
end

-- to_stub: a finished job within its repeat window keeps only a stub (lib/job.lua): its payload,
-- result and error go, and it leaves its finished set for the stubs set, scored by when the
-- window (or its own shorter retention) ends.
local function to_stub(plan, id, job, set_key, window_ms)
  local keep = job.keep_dead_ms
  if job.state == STATE.completed then keep = job.keep_result_ms end
  plan_zset(plan, set_key, id, nil)
  plan_zset(plan, plan.keys.stubs, id, job.finished_ms + math.min(keep, window_ms))
  plan_hash(plan, plan.keys.meta, id, stub_encode(job))
  for _, part in ipairs({"payload", "result", "error"}) do
    plan_hash(plan, plan.keys[part], id, nil)
  end
end

-- trim_finished: one finished set (completed, dead or cancelled), bounded by 2 * limit records:
-- 1. up to `limit` records whose retention has run out (score <= now) are deleted;
-- 2. then, while the set holds over `max_count`, up to `limit` more, soonest to expire first:
--    one whose repeat window has passed (finished_ms + window_ms <= now) is deleted, a younger
--    one becomes a stub, so that a repeated enqueue, complete, fail or cancel within the window
--    still finds the first call's outcome (the stub goes when the window ends: trim_stubs).
-- A record this code cannot read is set aside (lib/moves.lua), not counted. Returns the number
-- of records deleted or made stubs.
local function trim_finished(plan, set_key, max_count, limit, window_ms)
  if limit <= 0 then return 0 end
  local meta_key = plan.keys.meta
  local expired, jobs, unread, offset = walk_set(meta_key, set_key, plan.now, limit)
  local leaving = 0
  for _, id in ipairs(expired) do
    if unread[id] ~= UNREADABLE.newer then leaving = leaving + 1 end
  end
  local excess = redis.call("ZCARD", set_key) - leaving - max_count
  local over, over_jobs, over_unread = {}, {}, {}
  if excess > 0 then
    over, over_jobs, over_unread = walk_set(meta_key, set_key, nil, math.min(excess, limit), offset)
  end
  local trimmed = 0
  for part, ids in ipairs({expired, over}) do
    local found, missing = jobs, unread
    if part == 2 then found, missing = over_jobs, over_unread end
    for _, id in ipairs(ids) do
      local job = found[id]
      if missing[id] then
        set_aside(plan, id, missing[id], set_key, "in a finished set")
      elseif job == nil or part == 1 or job.finished_ms + window_ms <= plan.now then
        delete_job(plan, id, set_key)
        trimmed = trimmed + 1
      else
        to_stub(plan, id, job, set_key, window_ms)
        trimmed = trimmed + 1
      end
    end
  end
  return trimmed
end

-- trim_stubs: up to `limit` stubs whose window has ended are deleted.
local function trim_stubs(plan, stubs_key, limit)
  if limit <= 0 then return 0 end
  local ids, _, unread = walk_set(plan.keys.meta, stubs_key, plan.now, limit)
  local trimmed = 0
  for _, id in ipairs(ids) do
    if unread[id] then
      set_aside(plan, id, unread[id], stubs_key, "in the stubs set")
    else
      delete_job(plan, id, stubs_key)
      trimmed = trimmed + 1
    end
  end
  return trimmed
end
