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
-- Returns the number of records deleted or made stubs.
local function trim_finished(plan, set_key, max_count, limit, window_ms)
  if limit <= 0 then return 0 end
  local ids = redis.call("ZRANGEBYSCORE", set_key, "-inf", plan.now, "LIMIT", 0, limit)
  local n_expired = #ids
  local excess = redis.call("ZCARD", set_key) - n_expired - max_count
  if excess > 0 then
    local over = redis.call("ZRANGE", set_key, n_expired, n_expired + math.min(excess, limit) - 1)
    for _, id in ipairs(over) do ids[#ids + 1] = id end
  end
  local jobs, unread = jobs_read(plan.keys.meta, ids)
  for i, id in ipairs(ids) do
    local job = jobs[id]
    if unread[id] then
      set_aside(plan, id, unread[id], set_key, "in a finished set")
    elseif job == nil or i <= n_expired or job.finished_ms + window_ms <= plan.now then
      delete_job(plan, id, set_key)
    else
      to_stub(plan, id, job, set_key, window_ms)
    end
  end
  return #ids
end

-- trim_stubs: up to `limit` stubs whose window has ended are deleted.
local function trim_stubs(plan, stubs_key, limit)
  if limit <= 0 then return 0 end
  local ids = redis.call("ZRANGEBYSCORE", stubs_key, "-inf", plan.now, "LIMIT", 0, limit)
  local _, unread = jobs_read(plan.keys.meta, ids)
  for _, id in ipairs(ids) do
    if unread[id] then
      set_aside(plan, id, unread[id], stubs_key, "in the stubs set")
    else
      delete_job(plan, id, stubs_key)
    end
  end
  return #ids
end
