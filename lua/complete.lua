#!lua flags=allow-oom
--[[
complete: record the success of one or many leased jobs, each fenced by its lease token.

Runs under OOM (allow-oom) so that a full server can still drain its queue.

KEYS[1] clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta       (HASH)    job id -> job record
KEYS[3] payload    (HASH)    job id -> payload bytes (deleted when the record is trimmed)
KEYS[4] active     (ZSET)    leased job ids by lease deadline
KEYS[5] completed  (ZSET)    completed job ids by record expiry
KEYS[6] result     (HASH)    job id -> result bytes (opaque msgpack)
KEYS[7] error      (HASH)    job id -> last error text (deleted when the record is trimmed)

ARGV[1] max_completed  the most completed records to keep (0..10^9); older ones are trimmed
ARGV[2] trim_limit     the most records to trim in this call (0..MAX_BATCH)
ARGV[3] n              number of items (1..MAX_BATCH)
ARGV[...] each item, 3 values: job id, lease token, result bytes

Reply:  {STATUS.ok, status_1, ..., status_n}, where status_i is
          ok          accepted: the job is completed and its result kept for keep_result_ms
          duplicate   this token already completed the job: the first outcome stands
          lease_lost  the token is not the job's current lease, or its deadline has passed
                      (now >= deadline_ms, even if no reaper has run yet); nothing changed
          not_found   no job with that id (never enqueued, or its record was trimmed)
        {STATUS.bad_arg, name}; nothing is written

Invariants: a job is completed at most once, and only by the holder of its current, unexpired
lease; a late completion from a paused or partitioned worker changes nothing.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include lease
-- @include finish_job
-- @include delete_jobs
-- @include trim_finished

local clock_key, meta_key, payload_key, active_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local completed_key, result_key, error_key = KEYS[5], KEYS[6], KEYS[7]

local max_completed = int_arg(ARGV[1], 0, 1000000000)
if not max_completed then return {STATUS.bad_arg, "max_completed"} end
local trim_limit = int_arg(ARGV[2], 0, MAX_BATCH)
if not trim_limit then return {STATUS.bad_arg, "trim_limit"} end
local n = int_arg(ARGV[3], 1, MAX_BATCH)
if not n or #ARGV ~= 3 + 3 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[4 + 3 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[5 + 3 * i] > 64 then return {STATUS.bad_arg, "token"} end
end

local now = now_ms(clock_key)

-- One HMGET for every record; decisions are made on the decoded records in item order (an id
-- may come twice, say a stale token and the current one); then one write per key for the batch.
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[4 + 3 * i] end
local jobs = jobs_load(meta_key, ids)
local reply, done, results, finished = {STATUS.ok}, {}, {}, {}
for i = 0, n - 1 do
  local id, token = ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local job = jobs[id]
  local status
  if not job then
    status = STATUS.not_found
  elseif lease_current(job, token, now) then
    job.outcome = OUTCOME.completed
    mark_finished(job, STATE.completed, now)
    done[#done + 1] = id
    local r = #results
    results[r + 1], results[r + 2] = id, ARGV[6 + 3 * i]
    local f = #finished
    finished[f + 1], finished[f + 2] = now + job.keep_result_ms, id
    status = STATUS.ok
  elseif job.token == token and job.outcome == OUTCOME.completed then
    status = STATUS.duplicate
  else
    status = STATUS.lease_lost
  end
  reply[#reply + 1] = status
end
if #done > 0 then
  jobs_save(meta_key, done, jobs)
  for first, last in chunk_ranges(#done, 1) do
    redis.call("ZREM", active_key, unpack(done, first, last))
  end
  for first, last in chunk_ranges(#results, 2) do
    redis.call("HSET", result_key, unpack(results, first, last))
  end
  for first, last in chunk_ranges(#finished, 2) do
    redis.call("ZADD", completed_key, unpack(finished, first, last))
  end
end
trim_finished(completed_key, meta_key, payload_key, result_key, error_key, now, max_completed,
  trim_limit)
return reply
