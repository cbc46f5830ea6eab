-- The job record: one string per job in the meta HASH (id -> record), fields joined by "|".
-- Lua never decodes the payload; this record holds only what the scripts decide on.
-- JOB_FIELDS is mirrored by scheduler/_status.py JOB_FIELDS (tests/unit/test_parity.py).
local JOB_FIELDS = {
  "state",          -- one of STATE
  "attempt",        -- leases handed out so far (an expiry counts, as a claim did)
  "max_attempts",   -- leases allowed before the job goes to the dead letters
  "priority",       -- -1000..1000, higher is claimed first
  "lease_ms",       -- lease duration for each claim
  "backoff_ms",     -- first retry delay; doubles with each attempt
  "backoff_max_ms", -- cap on the retry delay
  "jitter_pm",      -- share of the delay drawn at random, in per mille (0..1000)
  "keep_result_ms", -- how long a completed job (and its result) is kept
  "keep_dead_ms",   -- how long a dead or cancelled job is kept
  "token",          -- the lease token of the latest claim ("" before the first)
  "outcome",        -- how the latest lease ended: one of OUTCOME
  "deadline_ms",    -- lease deadline while active, else 0
  "worker",         -- worker holding (or last holding) the lease
  "created_ms",     -- when the job was enqueued
  "ready_ms",       -- when it last became waiting (or is due, when delayed)
  "started_ms",     -- when the latest lease was handed out
  "finished_ms",    -- when it completed, died or was cancelled, else 0
}
local JOB_NUMERIC = {
  attempt = true, max_attempts = true, priority = true, lease_ms = true, backoff_ms = true,
  backoff_max_ms = true, jitter_pm = true, keep_result_ms = true, keep_dead_ms = true,
  deadline_ms = true, created_ms = true, ready_ms = true, started_ms = true, finished_ms = true,
}

local function job_decode(raw)
  local job, i, start = {}, 1, 1
  while true do
    local stop = string.find(raw, "|", start, true)
    local value = string.sub(raw, start, (stop or 0) - 1)
    local name = JOB_FIELDS[i]
    if name == nil then break end
    if JOB_NUMERIC[name] then value = tonumber(value) or 0 end
    job[name] = value
    i = i + 1
    if not stop then break end
    start = stop + 1
  end
  return job
end

local function job_encode(job)
  local parts = {}
  for i, name in ipairs(JOB_FIELDS) do
    local value = job[name]
    if JOB_NUMERIC[name] then value = string.format("%d", value) end
    parts[i] = value
  end
  return table.concat(parts, "|")
end

local function job_load(meta_key, id)
  local raw = redis.call("HGET", meta_key, id)
  if not raw then return nil end
  return job_decode(raw)
end

local function job_save(meta_key, id, job)
  redis.call("HSET", meta_key, id, job_encode(job))
end
