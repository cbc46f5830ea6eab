#!lua flags=allow-oom
--[[
fail: record that a leased job's attempt failed; fenced by its lease token. The script decides,
atomically, whether the job is retried or dead-lettered.

Runs under OOM (allow-oom) so that a full server can still drain its queue.

KEYS[1]  meta         (HASH)    job id -> job record
KEYS[2]  payload      (HASH)    job id -> payload bytes
KEYS[3]  ready        (ZSET)    waiting job ids by priority, then FIFO
KEYS[4]  delayed      (ZSET)    delayed job ids by run-at time
KEYS[5]  active       (ZSET)    leased job ids by lease deadline
KEYS[6]  running      (ZSET)    leased job ids whose handler began, by lease deadline
KEYS[7]  dead         (ZSET)    dead job ids by record expiry
KEYS[8]  result       (HASH)    job id -> result bytes (deleted when a record is trimmed)
KEYS[9]  error        (HASH)    job id -> last error text
KEYS[10] seq          (STRING)  FIFO counter
KEYS[11] wake         (LIST)    wake-up tokens for idle workers
KEYS[12] stubs        (ZSET)    ids of trimmed jobs kept as stubs, by when the stub goes
KEYS[13] quarantine   (ZSET)    ids of corrupt records, by when they were set aside
KEYS[14] unreadable   (ZSET)    ids of records of a newer version, by when last met

ARGV[1] id          the job
ARGV[2] token       its lease token
ARGV[3] error       error text to keep (at most 65536 bytes)
ARGV[4] retryable   1 = retry while attempts are left, 0 = dead-letter now
ARGV[5] delay_ms    -1 = the job's backoff (lib/backoff.lua), else this delay (0..MAX_MS)
ARGV[6] max_dead    the most dead records to keep (0..10^9)
ARGV[7] trim_limit  the most records to trim in this call, of each kind (0..MAX_BATCH)
ARGV[8] window_ms   the repeat window: count trimming keeps a stub this long (1..MAX_MS)

Reply:  {STATUS.ok, outcome, run_at_ms}: outcome "retry" (waiting again, or delayed until
          run_at_ms) or "dead" (run_at_ms = 0)
        {STATUS.duplicate, outcome, run_at_ms}: this token already failed the job; the first
          outcome stands (run_at_ms is then the job's ready_ms, or 0 when dead). A token's
          outcome is remembered until the job's next claim (a dead job's, for its retention,
          and at least the repeat window); a repeat after that gets lease_lost, which changes
          nothing either
        {STATUS.lease_lost}: the token is not the current, unexpired lease; nothing changed
        {STATUS.not_found}; {STATUS.unreadable}: a record this code cannot read, unchanged;
        {STATUS.bad_arg, name}: nothing is written

Invariants: only the current lease can fail a job; a job is dead-lettered before max_attempts
only when the failure is marked non-retryable; attempts never exceed max_attempts.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include plan
-- @include records
-- @include moves
-- @include lease_end
-- @include lease
-- @include backoff
-- @include trim

local meta_key, payload_key, ready_key, delayed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local active_key, running_key, dead_key, result_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local error_key, seq_key, wake_key, stubs_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local quarantine_key, unreadable_key = KEYS[13], KEYS[14]

local id = id_arg(ARGV[1])
if not id then return {STATUS.bad_arg, "id"} end
local token = ARGV[2]
if type(token) ~= "string" or #token > 64 then return {STATUS.bad_arg, "token"} end
local error_text = ARGV[3]
if type(error_text) ~= "string" or #error_text > 65536 then return {STATUS.bad_arg, "error"} end
local retryable = int_arg(ARGV[4], 0, 1)
if not retryable then return {STATUS.bad_arg, "retryable"} end
local delay_arg = int_arg(ARGV[5], -1, MAX_MS)
if not delay_arg then return {STATUS.bad_arg, "delay_ms"} end
local max_dead = int_arg(ARGV[6], 0, 1000000000)
if not max_dead then return {STATUS.bad_arg, "max_dead"} end
local trim_limit = int_arg(ARGV[7], 0, MAX_BATCH)
if not trim_limit then return {STATUS.bad_arg, "trim_limit"} end
local window_ms = int_arg(ARGV[8], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
if #ARGV ~= 8 then return {STATUS.bad_arg, "argv"} end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, ready = ready_key, delayed = delayed_key,
  active = active_key, running = running_key, dead = dead_key, result = result_key,
  error = error_key, seq = seq_key, wake = wake_key, stubs = stubs_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}

-- Stage 1: the record read, the outcome decided (dead, or a retry and when), then written.
local jobs, unread = jobs_read(meta_key, {id})
local job = jobs[id]
if unread[id] then return {STATUS.unreadable} end
if not job then return {STATUS.not_found} end
if not lease_current(job, token, now) then
  if job.token == token and (job.outcome == OUTCOME.retry or job.outcome == OUTCOME.dead) then
    local run_at = 0
    if job.outcome == OUTCOME.retry then run_at = job.ready_ms end
    return {STATUS.duplicate, job.outcome, run_at}
  end
  return {STATUS.lease_lost}
end

local plan = plan_new(K, now)
plan_hash(plan, error_key, id, error_text)
local outcome, run_at = OUTCOME.dead, 0
if retryable == 0 or job.attempt >= job.max_attempts then
  end_lease(plan, id, job, OUTCOME.dead, STATE.dead)
else
  local delay = delay_arg
  if delay < 0 then delay = retry_delay(job) end
  outcome, run_at = OUTCOME.retry, now + delay
  if delay > 0 then
    end_lease(plan, id, job, OUTCOME.retry, STATE.delayed, run_at)
  else
    end_lease(plan, id, job, OUTCOME.retry, STATE.waiting)
  end
end
plan_apply(plan)

-- Stage 2: bounded trimming of dead records and of stubs whose window has ended.
local trim = plan_new(K, now)
trim_finished(trim, dead_key, max_dead, trim_limit, window_ms)
trim_stubs(trim, stubs_key, trim_limit)
plan_apply(trim)
return {STATUS.ok, outcome, run_at}
