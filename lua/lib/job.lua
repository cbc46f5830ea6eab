-- The job record: one binary string per job in the meta HASH (id -> record), packed with the
-- struct library Redis ships: a format version byte, then each field of JOB_FIELDS in order as a
-- little-endian integer (states and outcomes as one-byte codes) or a NUL-terminated string (ids
-- and tokens never hold a NUL).
-- One struct.unpack or struct.pack call reads or writes a whole record, which costs a fraction
-- of splitting and formatting text. Lua never decodes the payload; this record holds only what
-- the scripts decide on. JOB_FIELDS is mirrored by scheduler/_status.py JOB_FIELDS
-- (tests/unit/test_parity.py).
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
-- B: format version; B: state and outcome as codes; s: string; H/h: 2-byte unsigned/signed;
-- i6: 6-byte signed, for times and durations in ms (up to 2^47 ms, far past MAX_MS).
local JOB_FORMAT = "<BBHHhi6i6i6Hi6i6sBi6si6i6i6i6"
local JOB_VERSION = 2
-- The codes of STATE and OUTCOME values in a record (one byte each instead of the name).
local STATE_CODE = {waiting = 1, delayed = 2, active = 3, completed = 4, dead = 5, cancelled = 6}
local STATE_OF_CODE = {"waiting", "delayed", "active", "completed", "dead", "cancelled"}
local OUTCOME_CODE = {
  [""] = 0, running = 1, completed = 2, retry = 3, dead = 4, expired = 5, returned = 6,
}
local OUTCOME_OF_CODE = {[0] = "", "running", "completed", "retry", "dead", "expired", "returned"}

local function job_decode(raw)
  local version, state, attempt, max_attempts, priority, lease_ms, backoff_ms, backoff_max_ms,
    jitter_pm, keep_result_ms, keep_dead_ms, token, outcome, deadline_ms, worker, created_ms,
    ready_ms, started_ms, finished_ms = struct.unpack(JOB_FORMAT, raw)
  if version ~= JOB_VERSION then error("job record of an unknown format") end
  return {
    state = STATE_OF_CODE[state], attempt = attempt, max_attempts = max_attempts,
    priority = priority, lease_ms = lease_ms, backoff_ms = backoff_ms,
    backoff_max_ms = backoff_max_ms, jitter_pm = jitter_pm, keep_result_ms = keep_result_ms,
    keep_dead_ms = keep_dead_ms, token = token, outcome = OUTCOME_OF_CODE[outcome],
    deadline_ms = deadline_ms, worker = worker, created_ms = created_ms, ready_ms = ready_ms,
    started_ms = started_ms, finished_ms = finished_ms,
  }
end

local function job_encode(job)
  return struct.pack(JOB_FORMAT, JOB_VERSION, STATE_CODE[job.state], job.attempt,
    job.max_attempts, job.priority, job.lease_ms, job.backoff_ms, job.backoff_max_ms,
    job.jitter_pm, job.keep_result_ms, job.keep_dead_ms, job.token, OUTCOME_CODE[job.outcome],
    job.deadline_ms, job.worker, job.created_ms, job.ready_ms, job.started_ms, job.finished_ms)
end

local function job_load(meta_key, id)
  local raw = redis.call("HGET", meta_key, id)
  if not raw then return nil end
  return job_decode(raw)
end

local function job_save(meta_key, id, job)
  redis.call("HSET", meta_key, id, job_encode(job))
end

-- Many records in one HMGET: a table id -> job (absent ids have no entry). `ids` holds at most
-- MAX_BATCH ids, well within what unpack() can spread.
local function jobs_load(meta_key, ids)
  local jobs = {}
  if #ids == 0 then return jobs end
  local raws = redis.call("HMGET", meta_key, unpack(ids))
  for i, id in ipairs(ids) do
    if raws[i] then jobs[id] = job_decode(raws[i]) end
  end
  return jobs
end

-- Save the records of `ids` (each id once) from `jobs` (id -> job) in as few HSETs as
-- chunk_ranges allows. Needs bulk.lua.
local function jobs_save(meta_key, ids, jobs)
  local args = {}
  for _, id in ipairs(ids) do
    args[#args + 1] = id
    args[#args + 1] = job_encode(jobs[id])
  end
  for first, last in chunk_ranges(#args, 2) do
    redis.call("HSET", meta_key, unpack(args, first, last))
  end
end
