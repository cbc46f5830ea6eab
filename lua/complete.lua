#!lua flags=allow-oom
--[[
complete: record the success of one or many leased jobs, each fenced by its lease token.

Runs under OOM (allow-oom) so that a full server can still drain its queue; the client keeps
the results of one call within its byte budget (Queue(max_call_bytes=...)).

KEYS[1]  meta         (HASH)  job id -> job record
KEYS[2]  payload      (HASH)  job id -> payload bytes (deleted when the record is trimmed)
KEYS[3]  active       (ZSET)  leased job ids by lease deadline
KEYS[4]  running      (ZSET)  leased job ids whose handler began, by lease deadline
KEYS[5]  completed    (ZSET)  completed job ids by record expiry
KEYS[6]  result       (HASH)  job id -> result bytes (opaque msgpack)
KEYS[7]  error        (HASH)  job id -> last error text (deleted when the record is trimmed)
KEYS[8]  stubs        (ZSET)  ids of trimmed jobs kept as stubs, by when the stub goes
KEYS[9]  quarantine   (ZSET)  ids of corrupt records, by when they were set aside
KEYS[10] unreadable   (ZSET)  ids of records of a newer version, by when last met

ARGV[1] max_completed  the most completed records to keep (0..10^9); older ones are trimmed
ARGV[2] trim_limit     the most records to trim in this call, of each kind (0..MAX_BATCH)
ARGV[3] window_ms      the repeat window: count trimming keeps a stub this long (1..MAX_MS)
ARGV[4] n              number of items (1..MAX_BATCH)
ARGV[...] each item, 3 values: job id, lease token, result bytes

Reply:  {STATUS.ok, status_1, ..., status_n}, where status_i is
          ok          accepted: the job is completed and its result kept for keep_result_ms
          duplicate   this token already completed the job: the first outcome stands
          lease_lost  the token is not the job's current lease, or its deadline has passed
                      (now >= deadline_ms, even if no reaper has run yet); nothing changed
          not_found   no job with that id (never enqueued, or its record and stub are gone)
          unreadable  the job's record is one this code cannot read; nothing changed
        {STATUS.bad_arg, name}; nothing is written

Invariants: a job is completed at most once, and only by the holder of its current, unexpired
lease; a late completion from a paused or partitioned worker changes nothing.
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
-- @include trim

local meta_key, payload_key, active_key, running_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local completed_key, result_key, error_key, stubs_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local quarantine_key, unreadable_key = KEYS[9], KEYS[10]

local max_completed = int_arg(ARGV[1], 0, 1000000000)
if not max_completed then return {STATUS.bad_arg, "max_completed"} end
local trim_limit = int_arg(ARGV[2], 0, MAX_BATCH)
if not trim_limit then return {STATUS.bad_arg, "trim_limit"} end
local window_ms = int_arg(ARGV[3], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
local n = int_arg(ARGV[4], 1, MAX_BATCH)
if not n or #ARGV ~= 4 + 3 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[5 + 3 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[6 + 3 * i] > 64 then return {STATUS.bad_arg, "token"} end
end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, active = active_key, running = running_key,
  completed = completed_key, result = result_key, error = error_key, stubs = stubs_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}

-- Stage 1: every record read and decoded, every item decided in order (an id may come twice,
-- say a stale token and the current one), then written.
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[5 + 3 * i] end
local jobs, unread = jobs_read(meta_key, ids)
local plan = plan_new(K, now)
local reply = {STATUS.ok}
for i = 0, n - 1 do
  local id, token = ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local job = jobs[id]
  local status
  if unread[id] then
    status = STATUS.unreadable
  elseif not job then
    status = STATUS.not_found
  elseif lease_current(job, token, now) then
    end_lease(plan, id, job, OUTCOME.completed, STATE.completed)
    plan_hash(plan, result_key, id, ARGV[7 + 3 * i])
    status = STATUS.ok
  elseif job.token == token and job.outcome == OUTCOME.completed then
    status = STATUS.duplicate
  else
    status = STATUS.lease_lost
  end
  reply[#reply + 1] = status
end
plan_apply(plan)

-- Stage 2: bounded trimming of completed records and of stubs whose window has ended.
local trim = plan_new(K, now)
trim_finished(trim, completed_key, max_completed, trim_limit, window_ms)
trim_stubs(trim, stubs_key, trim_limit)
plan_apply(trim)
return reply
