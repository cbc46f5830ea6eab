-- promote_due: move up to `limit` delayed jobs whose run-at time has come to the ready ZSET.
-- Bounded by `limit`; returns the number moved. ready_ms becomes the promotion time, so that
-- FIFO order within a priority is also ready_ms order (stats.lua relies on it). Needs STATE, job.lua and ready.lua.
local function promote_due(delayed_key, ready_key, meta_key, seq_key, wake_key, now, limit)
  local due = redis.call("ZRANGEBYSCORE", delayed_key, "-inf", now, "LIMIT", 0, limit)
  local ids, priorities = {}, {}
  for _, id in ipairs(due) do
    local job = job_load(meta_key, id)
    redis.call("ZREM", delayed_key, id)
    if job and job.state == STATE.delayed then
      job.state = STATE.waiting
      job.ready_ms = now  -- it enters the ready ZSET now, behind the jobs already there
      job_save(meta_key, id, job)
      ids[#ids + 1] = id
      priorities[#priorities + 1] = job.priority
    end
  end
  ready_push(ready_key, seq_key, wake_key, ids, priorities)
  return #ids
end
