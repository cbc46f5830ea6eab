#!lua flags=allow-oom
--[[
release: hand back leased jobs that a worker will not finish (it is shutting down), fenced by
each lease token, so another worker can take them at once instead of waiting for the lease to
expire. A hand-back is not a failed attempt: the attempt it used is given back.

Runs under OOM (allow-oom): it only moves jobs.

KEYS[1] clock   (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta    (HASH)    job id -> job record
KEYS[3] ready   (ZSET)    waiting job ids by priority, then FIFO
KEYS[4] active  (ZSET)    leased job ids by lease deadline
KEYS[5] seq     (STRING)  FIFO counter
KEYS[6] wake    (LIST)    wake-up tokens for idle workers

ARGV[1] n       number of items (1..MAX_BATCH)
ARGV[...] each item, 2 values: job id, lease token

Reply:  {STATUS.ok, status_1, ..., status_n}, where status_i is
          ok          handed back: waiting again, first in line within its priority, with
                      attempt - 1 and outcome "returned"
          duplicate   this token already handed the job back; nothing changed
          lease_lost  the token is not the job's current, unexpired lease; nothing changed
          not_found   no job with that id
        {STATUS.bad_arg, name}; nothing is written

Invariants: only the current lease can hand a job back; a released job is in ready only.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include lease

local clock_key, meta_key, ready_key, active_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq_key, wake_key = KEYS[5], KEYS[6]

local n = int_arg(ARGV[1], 1, MAX_BATCH)
if not n or #ARGV ~= 1 + 2 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[2 + 2 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[3 + 2 * i] > 64 then return {STATUS.bad_arg, "token"} end
end

local now = now_ms(clock_key)
local reply, ids, priorities = {STATUS.ok}, {}, {}
for i = 0, n - 1 do
  local id, token = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local job = job_load(meta_key, id)
  local status
  if not job then
    status = STATUS.not_found
  elseif lease_current(job, token, now) then
    redis.call("ZREM", active_key, id)
    job.state = STATE.waiting
    job.attempt = job.attempt - 1
    job.outcome = OUTCOME.returned
    job.deadline_ms = 0
    job.ready_ms = now
    job_save(meta_key, id, job)
    ids[#ids + 1] = id
    priorities[#priorities + 1] = job.priority
    status = STATUS.ok
  elseif job.token == token and job.outcome == OUTCOME.returned then
    status = STATUS.duplicate
  else
    status = STATUS.lease_lost
  end
  reply[#reply + 1] = status
end
ready_push(ready_key, seq_key, wake_key, ids, priorities, true)
return reply
