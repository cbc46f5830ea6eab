#!lua flags=allow-oom
--[[
release: hand back leased jobs that a worker will not finish (it is shutting down), fenced by
each lease token, so another worker can take them at once instead of waiting for the lease to
expire. A job whose handler never began (a prefetched job) gets back the attempt its lease
used; a job whose handler began keeps it counted, and on its last attempt goes to the dead
letters (outcome "returned", with the reason), so a job that outlives every worker's grace
period ends there at max_attempts instead of being handed back for ever.

Runs under OOM (allow-oom): it only moves jobs.

KEYS[1] meta     (HASH)    job id -> job record
KEYS[2] ready    (ZSET)    waiting job ids by priority, then FIFO
KEYS[3] active   (ZSET)    leased job ids by lease deadline
KEYS[4] running  (ZSET)    leased job ids whose handler began, by lease deadline
KEYS[5] dead     (ZSET)    dead job ids by record expiry
KEYS[6] error    (HASH)    job id -> last error text
KEYS[7] seq      (STRING)  FIFO counter
KEYS[8] wake     (LIST)    wake-up tokens for idle workers

ARGV[1] n       number of items (1..MAX_BATCH)
ARGV[...] each item, 3 values: job id, lease token, started: how long ago (ms) its handler
          began, or -1 when it has not (-1..MAX_MS)

Reply:  {STATUS.ok, status_1, ..., status_n}, where status_i is
          ok          handed back, outcome "returned": waiting again, first in line within its
                      priority, with attempt - 1 unless its handler began (reported now or
                      before); dead when its handler began on its last attempt
          duplicate   this token already handed the job back; nothing changed
          lease_lost  the token is not the job's current, unexpired lease; nothing changed
          not_found   no job with that id
          unreadable  the job's record is one this code cannot read; nothing changed
        {STATUS.bad_arg, name}; nothing is written

Invariants: only the current lease can hand a job back; a released job is in ready only; an
attempt is given back only to a lease whose handler never began.
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

local meta_key, ready_key, active_key, running_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead_key, error_key, seq_key, wake_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local n = int_arg(ARGV[1], 1, MAX_BATCH)
if not n or #ARGV ~= 1 + 3 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[2 + 3 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[3 + 3 * i] > 64 then return {STATUS.bad_arg, "token"} end
  if not int_arg(ARGV[4 + 3 * i], -1, MAX_MS) then return {STATUS.bad_arg, "started"} end
end

local now = now_ms()
local K = {
  meta = meta_key, ready = ready_key, active = active_key, running = running_key,
  dead = dead_key, error = error_key, seq = seq_key, wake = wake_key,
}
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[2 + 3 * i] end
local jobs, unread = jobs_read(meta_key, ids)
local plan = plan_new(K, now)
local reply = {STATUS.ok}
for i = 0, n - 1 do
  local id, token = ARGV[2 + 3 * i], ARGV[3 + 3 * i]
  local job = jobs[id]
  local status
  if unread[id] then
    status = STATUS.unreadable
  elseif not job then
    status = STATUS.not_found
  elseif lease_current(job, token, now) then
    note_started(job, tonumber(ARGV[4 + 3 * i]), now)  -- the lease ends here: no running entry
    if job.started_ms == 0 then
      job.attempt = job.attempt - 1
      end_lease(plan, id, job, OUTCOME.returned, STATE.waiting)
    elseif job.attempt < job.max_attempts then
      end_lease(plan, id, job, OUTCOME.returned, STATE.waiting)
    else
      plan_hash(plan, error_key, id, "handed back unfinished on attempt " .. job.attempt
        .. " of " .. job.max_attempts .. " (worker " .. job.worker .. ")")
      end_lease(plan, id, job, OUTCOME.returned, STATE.dead)
    end
    status = STATUS.ok
  elseif job.token == token and job.outcome == OUTCOME.returned then
    status = STATUS.duplicate
  else
    status = STATUS.lease_lost
  end
  reply[#reply + 1] = status
end
plan_apply(plan)
return reply
