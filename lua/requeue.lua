#!lua
--[[
requeue: move dead jobs back to waiting with a fresh attempt budget (attempt = 0), by id or the
ones soonest to expire first. The last error is kept until the job fails again.

KEYS[1] meta         (HASH)    job id -> job record
KEYS[2] ready        (ZSET)    waiting job ids by priority, then FIFO
KEYS[3] dead         (ZSET)    dead job ids by record expiry
KEYS[4] error        (HASH)    job id -> last error text
KEYS[5] seq          (STRING)  FIFO counter
KEYS[6] wake         (LIST)    wake-up tokens for idle workers
KEYS[7] requests     (HASH)    request id -> what that request did: "id status,id status,..."
KEYS[8] request_exp  (ZSET)    request id by the time its record is forgotten (ms)
KEYS[9] quarantine   (ZSET)    ids of corrupt records, by when they were set aside
KEYS[10] unreadable  (ZSET)    ids of records of a newer version, by when last met

ARGV[1] request_id   client-made, unique per call (an id): a repeat within the repeat window
                     answers as the first call did and changes nothing
ARGV[2] window_ms    the repeat window (1..MAX_MS)
ARGV[3] limit        with no ids: how many dead jobs to requeue, soonest to expire first
                     (1..MAX_BATCH)
ARGV[4..] ids        the jobs to requeue (at most MAX_BATCH); none = the first `limit`

Reply:  {STATUS.ok, requeued, id_1, status_1, ...}: status_i is ok (waiting now), not_found (no
          record, or only the stub of a trimmed one), bad_state (the job is not dead; nothing
          about it changed) or unreadable (a record this code cannot read; unchanged)
        {STATUS.duplicate, requeued, id_1, status_1, ...}: the first call's answer
        {STATUS.bad_arg, name}; nothing is written (also "request_id" for an id another kind
          of call used within the window)

Invariants: only dead jobs move; each moves from the dead ZSET to the ready ZSET.
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
-- @include requests
-- @include repeated_reply

local meta_key, ready_key, dead_key, error_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq_key, wake_key, requests_key, request_exp_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local quarantine_key, unreadable_key = KEYS[9], KEYS[10]

local request_id = id_arg(ARGV[1])
if not request_id then return {STATUS.bad_arg, "request_id"} end
local window_ms = int_arg(ARGV[2], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
local limit = int_arg(ARGV[3], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
if #ARGV - 3 > MAX_BATCH then return {STATUS.bad_arg, "ids"} end
local ids = {}
for i = 4, #ARGV do
  if not id_arg(ARGV[i]) then return {STATUS.bad_arg, "id"} end
  ids[#ids + 1] = ARGV[i]
end

local now = now_ms()
local K = {
  meta = meta_key, ready = ready_key, dead = dead_key, error = error_key, seq = seq_key,
  wake = wake_key, requests = requests_key, request_exp = request_exp_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}
local previous = recall_request(requests_key, request_id, "requeue")
if previous == false then return {STATUS.bad_arg, "request_id"} end
if previous then return repeated_reply(previous) end

local from_set = #ids == 0
local jobs, unread
if from_set then
  ids, jobs, unread = walk_set(meta_key, dead_key, nil, limit)
else
  jobs, unread = jobs_read(meta_key, ids)
end
local plan = plan_new(K, now)
local reply, record, moved = {STATUS.ok, 0}, {}, 0
for _, id in ipairs(ids) do
  local job = jobs[id]
  local status = STATUS.ok
  if unread[id] then
    status = STATUS.unreadable
    if from_set then set_aside(plan, id, unread[id], dead_key, "in the dead set") end
  elseif not job or job.stub then
    status = STATUS.not_found
  elseif job.state ~= STATE.dead then
    status = STATUS.bad_state
  else
    job.attempt = 0
    job.outcome = OUTCOME.none
    job.finished_ms = 0
    to_waiting(plan, id, job, false)
    moved = moved + 1
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = status
  record[#record + 1] = id .. " " .. status
end
remember_request(plan, request_id, "requeue", table.concat(record, ","), window_ms)
plan_apply(plan)
reply[2] = moved
return reply
