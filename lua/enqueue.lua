#!lua
--[[
enqueue: add one job or a batch of jobs in one atomic call.

KEYS[1] meta     (HASH)    job id -> job record (lib/job.lua)
KEYS[2] payload  (HASH)    job id -> payload bytes (opaque msgpack)
KEYS[3] ready    (ZSET)    waiting job ids by priority, then FIFO (lib/ready.lua)
KEYS[4] delayed  (ZSET)    delayed job ids by run-at time (ms)
KEYS[5] seq      (STRING)  the queue's FIFO counter
KEYS[6] wake     (LIST)    wake-up tokens for idle workers (lib/ready.lua)

ARGV[1]   n_options: number of option sets that follow (1..MAX_BATCH)
ARGV[...] each option set, 10 values:
          priority (-1000..1000), delay_ms (>= 0), run_at_ms (0 = none; absolute, server clock),
          max_attempts (1..1000), lease_ms (1..MAX_MS), backoff_ms, backoff_max_ms,
          jitter_pm (0..1000), keep_result_ms, keep_dead_ms
ARGV[k]   n_jobs (1..MAX_BATCH)
ARGV[...] each job, 3 values: id, payload bytes, option set index (1-based)

Reply:    {STATUS.ok, created, id_1, status_1, state_1, ..., id_n, status_n, state_n}
          status_i is ok (created now, in state_i) or duplicate (a job with that id exists, in
          state_i, "" when its record is one this code cannot read; nothing about it changed).
          A repeat of a whole call therefore creates nothing.
          {STATUS.bad_arg, name} when an argument is invalid; nothing is written.

Invariants: a new job is in exactly one of ready or delayed; a job id exists at most once, for
as long as its record (or its stub, lib/trim.lua) is kept: the deduplication window is the
job's retention, and at least the repeat window whatever count trimming does.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include plan
-- @include moves

local meta_key, payload_key, ready_key = KEYS[1], KEYS[2], KEYS[3]
local delayed_key, seq_key, wake_key = KEYS[4], KEYS[5], KEYS[6]

local OPTION_NAMES = {
  {"priority", -1000, 1000}, {"delay_ms", 0, MAX_MS}, {"run_at_ms", 0, MAX_MS},
  {"max_attempts", 1, 1000}, {"lease_ms", 1, MAX_MS}, {"backoff_ms", 0, MAX_MS},
  {"backoff_max_ms", 0, MAX_MS}, {"jitter_pm", 0, 1000}, {"keep_result_ms", 0, MAX_MS},
  {"keep_dead_ms", 0, MAX_MS},
}

-- Validate everything before the first write.
local n_options = int_arg(ARGV[1], 1, MAX_BATCH)
if not n_options then return {STATUS.bad_arg, "n_options"} end
local options, pos = {}, 2
for o = 1, n_options do
  local set = {}
  for _, spec in ipairs(OPTION_NAMES) do
    local value = int_arg(ARGV[pos], spec[2], spec[3])
    if not value then return {STATUS.bad_arg, spec[1]} end
    set[spec[1]] = value
    pos = pos + 1
  end
  options[o] = set
end
local n_jobs = int_arg(ARGV[pos], 1, MAX_BATCH)
if not n_jobs or #ARGV ~= pos + 3 * n_jobs then return {STATUS.bad_arg, "n_jobs"} end
for j = 0, n_jobs - 1 do
  local base = pos + 1 + 3 * j
  if not id_arg(ARGV[base]) then return {STATUS.bad_arg, "id"} end
  if not int_arg(ARGV[base + 2], 1, n_options) then return {STATUS.bad_arg, "option_index"} end
end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, ready = ready_key, delayed = delayed_key,
  seq = seq_key, wake = wake_key,
}
local plan = plan_new(K, now)

-- One HMGET finds the jobs that exist already (a record this code cannot read still takes its
-- id); the new records, payloads and set entries are planned, then written per key.
local ids = {}
for j = 0, n_jobs - 1 do ids[j + 1] = ARGV[pos + 1 + 3 * j] end
local existing = redis.call("HMGET", meta_key, unpack(ids))
local reply, created, new_jobs = {STATUS.ok, 0}, 0, {}
for j = 0, n_jobs - 1 do
  local base = pos + 1 + 3 * j
  local id = ARGV[base]
  local n = #reply
  local state
  if new_jobs[id] then
    state = new_jobs[id].state  -- the same id twice in one batch: the first one stands
  elseif existing[j + 1] then
    local found = job_decode(existing[j + 1])
    state = found and found.state or ""
  end
  if state then
    reply[n + 1], reply[n + 2], reply[n + 3] = id, STATUS.duplicate, state
  else
    local o = options[tonumber(ARGV[base + 2])]
    local payload = ARGV[base + 1]
    local run_at = now + o.delay_ms
    if o.run_at_ms > 0 then run_at = o.run_at_ms end
    local job = {
      attempt = 0, max_attempts = o.max_attempts, priority = o.priority,
      lease_ms = o.lease_ms, backoff_ms = o.backoff_ms, backoff_max_ms = o.backoff_max_ms,
      jitter_pm = o.jitter_pm, keep_result_ms = o.keep_result_ms, keep_dead_ms = o.keep_dead_ms,
      token = "", outcome = OUTCOME.none, deadline_ms = 0, worker = "", created_ms = now,
      ready_ms = now, leased_ms = 0, started_ms = 0, finished_ms = 0, payload_bytes = #payload,
    }
    if run_at > now then
      to_delayed(plan, id, job, run_at)
    else
      to_waiting(plan, id, job, false)
    end
    plan_hash(plan, payload_key, id, payload)
    new_jobs[id] = job
    created = created + 1
    reply[n + 1], reply[n + 2], reply[n + 3] = id, STATUS.ok, job.state
  end
end
plan_apply(plan)
reply[2] = created
return reply
