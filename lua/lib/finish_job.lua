-- finish_job: record that a job left the active or waiting states for good (completed, dead or
-- cancelled). The finished ZSET is scored by the time the record expires, so trim_finished can
-- drop expired records oldest first. The caller has removed the job from its previous ZSET.
-- mark_finished changes only the record in memory, for a caller that writes a batch at once.
local function mark_finished(job, state, now)
  job.state = state
  job.deadline_ms = 0
  job.finished_ms = now
end

local function finish_job(meta_key, id, job, state, finished_key, now, keep_ms)
  mark_finished(job, state, now)
  job_save(meta_key, id, job)
  redis.call("ZADD", finished_key, now + keep_ms, id)
end
