-- reap_expired: leases whose deadline has passed (deadline <= now) end. Each expiry already
-- counted as an attempt when the lease was handed out, so a job with attempts left goes back to
-- waiting at once (it is offered again within lease + reaper interval), and a job whose
-- attempts are used up goes to the dead letters with the reason. Bounded by `limit`.
-- Returns requeued, dead. Needs STATE, OUTCOME, job.lua, ready.lua and finish.lua.
local function reap_expired(active_key, ready_key, dead_key, meta_key, seq_key, wake_key,
                            error_key, now, limit)
  local expired = redis.call("ZRANGEBYSCORE", active_key, "-inf", now, "LIMIT", 0, limit)
  local ids, priorities, dead = {}, {}, 0
  for _, id in ipairs(expired) do
    redis.call("ZREM", active_key, id)
    local job = job_load(meta_key, id)
    if job and job.state == STATE.active then
      if job.attempt >= job.max_attempts then
        job.outcome = OUTCOME.dead
        redis.call("HSET", error_key, id, "lease expired on attempt " .. job.attempt
          .. " of " .. job.max_attempts .. " (worker " .. job.worker .. ")")
        finish_job(meta_key, id, job, STATE.dead, dead_key, now, job.keep_dead_ms)
        dead = dead + 1
      else
        job.state = STATE.waiting
        job.outcome = OUTCOME.expired
        job.deadline_ms = 0
        job.ready_ms = now
        job_save(meta_key, id, job)
        ids[#ids + 1] = id
        priorities[#priorities + 1] = job.priority
      end
    end
  end
  ready_push(ready_key, seq_key, wake_key, ids, priorities)
  return #ids, dead
end
