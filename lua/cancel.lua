#!lua flags=allow-oom
--[[
cancel: cancel a job that has not started: waiting or delayed. A running job is not cancelled
here (its worker holds the lease); a finished one cannot be.

KEYS[1] meta        (HASH)  job id -> job record
KEYS[2] payload     (HASH)  job id -> payload bytes
KEYS[3] ready       (ZSET)  waiting job ids by priority, then FIFO
KEYS[4] delayed     (ZSET)  delayed job ids by run-at time
KEYS[5] cancelled   (ZSET)  cancelled job ids by record expiry (keep_dead_ms)
KEYS[6] result      (HASH)  job id -> result bytes (deleted when a record is trimmed)
KEYS[7] error       (HASH)  job id -> last error text (deleted when a record is trimmed)
KEYS[8] stubs       (ZSET)  ids of trimmed jobs kept as stubs, by when the stub goes
KEYS[9] quarantine  (ZSET)  ids of corrupt records, by when they were set aside
KEYS[10] unreadable (ZSET)  ids of records of a newer version, by when last met

ARGV[1] id             the job
ARGV[2] max_cancelled  the most cancelled records to keep (0..10^9)
ARGV[3] trim_limit     the most records to trim in this call, of each kind (0..MAX_BATCH)
ARGV[4] window_ms      the repeat window: count trimming keeps a stub this long (1..MAX_MS)

Reply:  {STATUS.ok, previous_state}: cancelled now; previous_state is waiting or delayed
        {STATUS.duplicate, "cancelled"}: it was cancelled already
        {STATUS.bad_state, state}: active, completed or dead; nothing changed
        {STATUS.not_found}; {STATUS.unreadable}: a record this code cannot read, unchanged;
        {STATUS.bad_arg, name}: nothing is written

Invariants: a cancelled job is in no other structure and is never claimed.
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
-- @include trim

local meta_key, payload_key, ready_key, delayed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cancelled_key, result_key, error_key, stubs_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local quarantine_key, unreadable_key = KEYS[9], KEYS[10]

local id = id_arg(ARGV[1])
if not id then return {STATUS.bad_arg, "id"} end
local max_cancelled = int_arg(ARGV[2], 0, 1000000000)
if not max_cancelled then return {STATUS.bad_arg, "max_cancelled"} end
local trim_limit = int_arg(ARGV[3], 0, MAX_BATCH)
if not trim_limit then return {STATUS.bad_arg, "trim_limit"} end
local window_ms = int_arg(ARGV[4], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
if #ARGV ~= 4 then return {STATUS.bad_arg, "argv"} end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, ready = ready_key, delayed = delayed_key,
  cancelled = cancelled_key, result = result_key, error = error_key, stubs = stubs_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}
local jobs, unread = jobs_read(meta_key, {id})
local job = jobs[id]
if unread[id] then return {STATUS.unreadable} end
if not job then return {STATUS.not_found} end
if job.state == STATE.cancelled then return {STATUS.duplicate, job.state} end
if job.state ~= STATE.waiting and job.state ~= STATE.delayed then
  return {STATUS.bad_state, job.state}
end

local previous = job.state
local plan = plan_new(K, now)
finish(plan, id, job, STATE.cancelled)
plan_apply(plan)

local trim = plan_new(K, now)
trim_finished(trim, cancelled_key, max_cancelled, trim_limit, window_ms)
trim_stubs(trim, stubs_key, trim_limit)
plan_apply(trim)
return {STATUS.ok, previous}
