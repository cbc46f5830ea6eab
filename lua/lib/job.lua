-- The job record: one binary string per job in the meta HASH (id -> record), packed with the
-- struct library Redis ships. Lua never decodes the payload; the record holds only what the
-- scripts decide on. JOB_FIELDS is mirrored by scheduler/_status.py (tests/unit/test_parity.py).
--
-- Layout (version 3): a head of two bytes, the format version and a flags byte, then the fields
-- of JOB_FIELDS in order, as little-endian integers (states and outcomes as one-byte codes) or
-- NUL-terminated strings (ids and tokens never hold a NUL).
--
-- How the layout grows. A feature that needs more per-job data claims the next bit of the flags
-- byte and appends its fields after JOB_FIELDS when that bit is set, in bit order; records
-- without the bit stay as they are, so no new version is needed. A reader that meets a flag it
-- does not know is reading a record of a newer version: it leaves that record untouched. A new
-- version number is only for a change of the fixed fields.
--
-- Every earlier version is read too (migrated on read, written back as version 3): version 1
-- (states and outcomes as strings, 8-byte times; commit 75370a3) and version 2 (one-byte codes,
-- 6-byte times). tests/fixtures/job_records.json keeps records of both.
--
-- A stub (FLAG_STUB) is what count trimming keeps of a finished job within the repeat window:
-- state, outcome, attempts, token and times, no payload, result or error (see lib/trim.lua).
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
  "leased_ms",      -- when the latest lease was handed out (0 before the first)
  "started_ms",     -- when the latest lease's handler began, as its worker reported; else 0
  "finished_ms",    -- when it completed, died or was cancelled, else 0
  "payload_bytes",  -- the payload's size (-1: unknown, a record of version 1 or 2)
}
local JOB_VERSION = 3
local FLAG_STUB = 1
local KNOWN_FLAGS = FLAG_STUB  -- every flag this code reads; any other bit means "newer"
-- B: byte; H/h: 2-byte unsigned/signed; i6: 6-byte signed, for times and durations in ms (up
-- to 2^47 ms, far past MAX_MS); i4: 4-byte signed; s: NUL-terminated string.
local JOB_FORMAT = "<BBBHHhi6i6i6Hi6i6sBi6si6i6i6i6i6i4"
local STUB_FORMAT = "<BBBBHHsi6i6i6"
local V2_FORMAT = "<BBHHhi6i6i6Hi6i6sBi6si6i6i6i6"
local V1_FORMAT = "<BsHHhi8i8i8Hi8i8ssi8si8i8i8i8"
-- The codes of STATE and OUTCOME values in a record (one byte each instead of the name).
local STATE_CODE = {waiting = 1, delayed = 2, active = 3, completed = 4, dead = 5, cancelled = 6}
local STATE_OF_CODE = {"waiting", "delayed", "active", "completed", "dead", "cancelled"}
local OUTCOME_CODE = {
  [""] = 0, running = 1, completed = 2, retry = 3, dead = 4, expired = 5, returned = 6,
}
local OUTCOME_OF_CODE = {[0] = "", "running", "completed", "retry", "dead", "expired", "returned"}

-- The readers below raise on a record too short for their format; job_decode calls them with
-- pcall. Each returns the job and the position after the last byte it read.
local function read_v3(raw)
  local _, _, state, attempt, max_attempts, priority, lease_ms, backoff_ms, backoff_max_ms,
    jitter_pm, keep_result_ms, keep_dead_ms, token, outcome, deadline_ms, worker, created_ms,
    ready_ms, leased_ms, started_ms, finished_ms, payload_bytes, after = struct.unpack(JOB_FORMAT, raw)
  return {
    state = STATE_OF_CODE[state], attempt = attempt, max_attempts = max_attempts,
    priority = priority, lease_ms = lease_ms, backoff_ms = backoff_ms,
    backoff_max_ms = backoff_max_ms, jitter_pm = jitter_pm, keep_result_ms = keep_result_ms,
    keep_dead_ms = keep_dead_ms, token = token, outcome = OUTCOME_OF_CODE[outcome],
    deadline_ms = deadline_ms, worker = worker, created_ms = created_ms, ready_ms = ready_ms,
    leased_ms = leased_ms, started_ms = started_ms, finished_ms = finished_ms,
    payload_bytes = payload_bytes,
  }, after
end

local function read_stub(raw)
  local _, _, state, outcome, attempt, max_attempts, token, created_ms, ready_ms, finished_ms,
    after = struct.unpack(STUB_FORMAT, raw)
  return {
    stub = true, state = STATE_OF_CODE[state], outcome = OUTCOME_OF_CODE[outcome],
    attempt = attempt, max_attempts = max_attempts, priority = 0, lease_ms = 0, backoff_ms = 0,
    backoff_max_ms = 0, jitter_pm = 0, keep_result_ms = 0, keep_dead_ms = 0, token = token,
    deadline_ms = 0, worker = "", created_ms = created_ms, ready_ms = ready_ms, leased_ms = 0,
    started_ms = 0, finished_ms = finished_ms, payload_bytes = -1,
  }, after
end

local function read_v2(raw)
  local _, state, attempt, max_attempts, priority, lease_ms, backoff_ms, backoff_max_ms,
    jitter_pm, keep_result_ms, keep_dead_ms, token, outcome, deadline_ms, worker, created_ms,
    ready_ms, leased_ms, finished_ms, after = struct.unpack(V2_FORMAT, raw)
  return {
    state = STATE_OF_CODE[state], attempt = attempt, max_attempts = max_attempts,
    priority = priority, lease_ms = lease_ms, backoff_ms = backoff_ms,
    backoff_max_ms = backoff_max_ms, jitter_pm = jitter_pm, keep_result_ms = keep_result_ms,
    keep_dead_ms = keep_dead_ms, token = token, outcome = OUTCOME_OF_CODE[outcome],
    deadline_ms = deadline_ms, worker = worker, created_ms = created_ms, ready_ms = ready_ms,
    leased_ms = leased_ms, started_ms = 0, finished_ms = finished_ms, payload_bytes = -1,
  }, after
end

local function read_v1(raw)
  local _, state, attempt, max_attempts, priority, lease_ms, backoff_ms, backoff_max_ms,
    jitter_pm, keep_result_ms, keep_dead_ms, token, outcome, deadline_ms, worker, created_ms,
    ready_ms, leased_ms, finished_ms, after = struct.unpack(V1_FORMAT, raw)
  return {
    state = STATE_OF_CODE[STATE_CODE[state]], attempt = attempt, max_attempts = max_attempts,
    priority = priority, lease_ms = lease_ms, backoff_ms = backoff_ms,
    backoff_max_ms = backoff_max_ms, jitter_pm = jitter_pm, keep_result_ms = keep_result_ms,
    keep_dead_ms = keep_dead_ms, token = token, outcome = OUTCOME_OF_CODE[OUTCOME_CODE[outcome]],
    deadline_ms = deadline_ms, worker = worker, created_ms = created_ms, ready_ms = ready_ms,
    leased_ms = leased_ms, started_ms = 0, finished_ms = finished_ms, payload_bytes = -1,
  }, after
end

local READERS = {read_v1, read_v2}

-- job_decode(raw): the job as a table, or nil and the reason it cannot be read: UNREADABLE.newer
-- (a version, or a flag, this code does not know: the caller leaves the record untouched) or
-- UNREADABLE.corrupt (too short, too long, an unknown state or outcome code: no version can read
-- it; the caller quarantines it). Never raises.
local function job_decode(raw)
  if type(raw) ~= "string" or #raw == 0 then return nil, UNREADABLE.corrupt end
  local version = string.byte(raw, 1)
  if version > JOB_VERSION then return nil, UNREADABLE.newer end
  if #raw < 2 then return nil, UNREADABLE.corrupt end
  local reader = READERS[version]
  if version == JOB_VERSION then
    local flags = string.byte(raw, 2)
    if bit.band(flags, bit.bnot(KNOWN_FLAGS)) ~= 0 then return nil, UNREADABLE.newer end
    reader = read_v3
    if flags == FLAG_STUB then reader = read_stub end
  end
  if not reader then return nil, UNREADABLE.corrupt end
  local ok, job, after = pcall(reader, raw)
  if not ok or after ~= #raw + 1 or job.state == nil or job.outcome == nil then
    return nil, UNREADABLE.corrupt
  end
  return job
end

local function job_encode(job)
  return struct.pack(JOB_FORMAT, JOB_VERSION, 0, STATE_CODE[job.state], job.attempt,
    job.max_attempts, job.priority, job.lease_ms, job.backoff_ms, job.backoff_max_ms,
    job.jitter_pm, job.keep_result_ms, job.keep_dead_ms, job.token, OUTCOME_CODE[job.outcome],
    job.deadline_ms, job.worker, job.created_ms, job.ready_ms, job.leased_ms, job.started_ms,
    job.finished_ms, job.payload_bytes)
end

-- A stub keeps what a repeated enqueue, complete, fail or cancel needs to answer as the first
-- call did (ready_ms: the run-at time a repeated fail of a retried job answers with): about 45
-- bytes besides the id.
local function stub_encode(job)
  return struct.pack(STUB_FORMAT, JOB_VERSION, FLAG_STUB, STATE_CODE[job.state],
    OUTCOME_CODE[job.outcome], job.attempt, job.max_attempts, job.token, job.created_ms,
    job.ready_ms, job.finished_ms)
end
