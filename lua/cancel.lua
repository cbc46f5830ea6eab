#!lua flags=allow-oom
--[[
cancel: cancel a job that has not started: waiting or delayed. A running job is not cancelled
here (its worker holds the lease); a finished one cannot be.

KEYS[1] clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta       (HASH)    job id -> job record
KEYS[3] payload    (HASH)    job id -> payload bytes
KEYS[4] ready      (ZSET)    waiting job ids by priority, then FIFO
KEYS[5] delayed    (ZSET)    delayed job ids by run-at time
KEYS[6] cancelled  (ZSET)    cancelled job ids by record expiry (keep_dead_ms)
KEYS[7] result     (HASH)    job id -> result bytes (deleted when a record is trimmed)
KEYS[8] error      (HASH)    job id -> last error text (deleted when a record is trimmed)

ARGV[1] id             the job
ARGV[2] max_cancelled  the most cancelled records to keep (0..10^9)
ARGV[3] trim_limit     the most records to trim in this call (0..MAX_BATCH)

Reply:  {STATUS.ok, previous_state}: cancelled now; previous_state is waiting or delayed
        {STATUS.duplicate, "cancelled"}: it was cancelled already
        {STATUS.bad_state, state}: active, completed or dead; nothing changed
        {STATUS.not_found}; {STATUS.bad_arg, name}: nothing is written

Invariants: a cancelled job is in no other structure and is never claimed.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include finish_job
-- @include delete_jobs
-- @include trim_finished

local clock_key, meta_key, payload_key, ready_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayed_key, cancelled_key, result_key, error_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local id = id_arg(ARGV[1])
if not id then return {STATUS.bad_arg, "id"} end
local max_cancelled = int_arg(ARGV[2], 0, 1000000000)
if not max_cancelled then return {STATUS.bad_arg, "max_cancelled"} end
local trim_limit = int_arg(ARGV[3], 0, MAX_BATCH)
if not trim_limit then return {STATUS.bad_arg, "trim_limit"} end
if #ARGV ~= 3 then return {STATUS.bad_arg, "argv"} end

local now = now_ms(clock_key)
local job = job_load(meta_key, id)
if not job then return {STATUS.not_found} end
if job.state == STATE.cancelled then return {STATUS.duplicate, job.state} end
if job.state ~= STATE.waiting and job.state ~= STATE.delayed then
  return {STATUS.bad_state, job.state}
end

local previous = job.state
if previous == STATE.waiting then
  redis.call("ZREM", ready_key, id)
else
  redis.call("ZREM", delayed_key, id)
end
finish_job(meta_key, id, job, STATE.cancelled, cancelled_key, now, job.keep_dead_ms)
trim_finished(cancelled_key, meta_key, payload_key, result_key, error_key, now, max_cancelled,
  trim_limit)
return {STATUS.ok, previous}
