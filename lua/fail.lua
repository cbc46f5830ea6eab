#!lua flags=allow-oom
--[[
fail: record that a leased job's attempt failed; fenced by its lease token. The script decides,
atomically, whether the job is retried or dead-lettered.

Runs under OOM (allow-oom) so that a full server can still drain its queue.

KEYS[1]  clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2]  meta       (HASH)    job id -> job record
KEYS[3]  payload    (HASH)    job id -> payload bytes
KEYS[4]  ready      (ZSET)    waiting job ids by priority, then FIFO
KEYS[5]  delayed    (ZSET)    delayed job ids by run-at time
KEYS[6]  active     (ZSET)    leased job ids by lease deadline
KEYS[7]  dead       (ZSET)    dead job ids by record expiry
KEYS[8]  result     (HASH)    job id -> result bytes (deleted when a record is trimmed)
KEYS[9]  error      (HASH)    job id -> last error text
KEYS[10] seq        (STRING)  FIFO counter
KEYS[11] wake       (LIST)    wake-up tokens for idle workers

ARGV[1] id          the job
ARGV[2] token       its lease token
ARGV[3] error       error text to keep (at most 65536 bytes)
ARGV[4] retryable   1 = retry while attempts are left, 0 = dead-letter now
ARGV[5] delay_ms    -1 = the job's backoff (lib/backoff.lua), else this delay (0..MAX_MS)
ARGV[6] max_dead    the most dead records to keep (0..10^9)
ARGV[7] trim_limit  the most records to trim in this call (0..MAX_BATCH)

Reply:  {STATUS.ok, outcome, run_at_ms}: outcome "retry" (waiting again, or delayed until
          run_at_ms) or "dead" (run_at_ms = 0)
        {STATUS.duplicate, outcome, run_at_ms}: this token already failed the job; the first
          outcome stands (run_at_ms is then the job's ready_ms, or 0 when dead). A token's
          outcome is remembered until the job's next claim; a repeat after that gets
          lease_lost, which changes nothing either
        {STATUS.lease_lost}: the token is not the current, unexpired lease; nothing changed
        {STATUS.not_found}; {STATUS.bad_arg, name}: nothing is written

Invariants: only the current lease can fail a job; a job is dead-lettered before max_attempts
only when the failure is marked non-retryable; attempts never exceed max_attempts.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include lease
-- @include backoff
-- @include finish_job
-- @include delete_jobs
-- @include trim_finished

local clock_key, meta_key, payload_key, ready_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayed_key, active_key, dead_key, result_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local error_key, seq_key, wake_key = KEYS[9], KEYS[10], KEYS[11]

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
if #ARGV ~= 7 then return {STATUS.bad_arg, "argv"} end

local now = now_ms(clock_key)
local job = job_load(meta_key, id)
if not job then return {STATUS.not_found} end
if not lease_current(job, token, now) then
  if job.token == token and (job.outcome == OUTCOME.retry or job.outcome == OUTCOME.dead) then
    local run_at = 0
    if job.outcome == OUTCOME.retry then run_at = job.ready_ms end
    return {STATUS.duplicate, job.outcome, run_at}
  end
  return {STATUS.lease_lost}
end

redis.call("ZREM", active_key, id)
redis.call("HSET", error_key, id, error_text)
if retryable == 0 or job.attempt >= job.max_attempts then
  job.outcome = OUTCOME.dead
  finish_job(meta_key, id, job, STATE.dead, dead_key, now, job.keep_dead_ms)
  trim_finished(dead_key, meta_key, payload_key, result_key, error_key, now, max_dead, trim_limit)
  return {STATUS.ok, OUTCOME.dead, 0}
end

local delay = delay_arg
if delay < 0 then delay = retry_delay(job) end
job.outcome = OUTCOME.retry
job.deadline_ms = 0
job.ready_ms = now + delay
if delay > 0 then
  job.state = STATE.delayed
  job_save(meta_key, id, job)
  redis.call("ZADD", delayed_key, job.ready_ms, id)
else
  job.state = STATE.waiting
  job_save(meta_key, id, job)
  ready_push(ready_key, seq_key, wake_key, {id}, {job.priority})
end
trim_finished(dead_key, meta_key, payload_key, result_key, error_key, now, max_dead, trim_limit)
return {STATUS.ok, OUTCOME.retry, job.ready_ms}
