#!lua flags=allow-oom
--[[
purge: delete finished jobs (completed, dead or cancelled) for good, by id or the ones soonest
to expire first. Active and waiting jobs are never purged: cancel them first. A stub (what
count trimming keeps of a finished job) is purged like the job it stands for. With the state
"quarantine", the corrupt records set aside in the quarantine (by id, or the oldest first)
are deleted for good.

Runs under OOM (allow-oom): it only deletes.

KEYS[1] meta         (HASH)  job id -> job record
KEYS[2] payload      (HASH)  job id -> payload bytes
KEYS[3] completed    (ZSET)  completed job ids by record expiry
KEYS[4] dead         (ZSET)  dead job ids by record expiry
KEYS[5] cancelled    (ZSET)  cancelled job ids by record expiry
KEYS[6] stubs        (ZSET)  ids of trimmed jobs kept as stubs, by when the stub goes
KEYS[7] result       (HASH)  job id -> result bytes
KEYS[8] error        (HASH)  job id -> last error text
KEYS[9] requests     (HASH)  request id -> what that request did: "id status,id status,..."
KEYS[10] request_exp (ZSET)  request id by the time its record is forgotten (ms)
KEYS[11] quarantine  (ZSET)  ids of corrupt records, by when they were set aside
KEYS[12] unreadable  (ZSET)  ids of records of a newer version, by when last met

ARGV[1] request_id   client-made, unique per call (an id): a repeat within the repeat window
                     answers as the first call did and changes nothing
ARGV[2] window_ms    the repeat window (1..MAX_MS)
ARGV[3] state        which finished state: completed, dead or cancelled; or quarantine
ARGV[4] limit        with no ids: how many of that state's records to delete, soonest to expire
                     first (1..MAX_BATCH)
ARGV[5..] ids        the jobs to delete (at most MAX_BATCH); none = the first `limit`

Reply:  {STATUS.ok, purged, id_1, status_1, ...}: status_i is ok (deleted), not_found, bad_state
          (the job is not in that state, or not in the quarantine; nothing about it changed) or
          unreadable (a record this code cannot read, out of the quarantine; unchanged)
        {STATUS.duplicate, purged, id_1, status_1, ...}: the first call's answer
        {STATUS.bad_arg, name}; nothing is written (also "request_id" for an id another kind
          of call used within the window)

Invariants: a purged job leaves no trace: record, payload, result, error and set entry go.
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
-- @include requests
-- @include repeated_reply

local meta_key, payload_key, completed_key, dead_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cancelled_key, stubs_key, result_key, error_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local requests_key, request_exp_key = KEYS[9], KEYS[10]
local quarantine_key, unreadable_key = KEYS[11], KEYS[12]

local set_for_state = {
  [STATE.completed] = completed_key, [STATE.dead] = dead_key, [STATE.cancelled] = cancelled_key,
  quarantine = quarantine_key,
}
local request_id = id_arg(ARGV[1])
if not request_id then return {STATUS.bad_arg, "request_id"} end
local window_ms = int_arg(ARGV[2], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
local state = ARGV[3]
local set_key = set_for_state[state]
if not set_key then return {STATUS.bad_arg, "state"} end
local limit = int_arg(ARGV[4], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
if #ARGV - 4 > MAX_BATCH then return {STATUS.bad_arg, "ids"} end
local ids = {}
for i = 5, #ARGV do
  if not id_arg(ARGV[i]) then return {STATUS.bad_arg, "id"} end
  ids[#ids + 1] = ARGV[i]
end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, completed = completed_key, dead = dead_key,
  cancelled = cancelled_key, stubs = stubs_key, result = result_key, error = error_key,
  requests = requests_key, request_exp = request_exp_key, quarantine = quarantine_key,
  unreadable = unreadable_key,
}
local previous = recall_request(requests_key, request_id, "purge")
if previous == false then return {STATUS.bad_arg, "request_id"} end
if previous then return repeated_reply(previous) end

local from_set = #ids == 0
local plan = plan_new(K, now)
local reply, record, purged, seen = {STATUS.ok, 0}, {}, 0, {}

-- The quarantine: its records are unreadable by definition; what counts is being in it.
local function purge_quarantined()
  if from_set then ids = redis.call("ZRANGE", quarantine_key, 0, limit - 1) end
  for _, id in ipairs(ids) do
    local status = STATUS.ok
    if seen[id] then
      status = STATUS.not_found
    elseif redis.call("ZSCORE", quarantine_key, id) then
      delete_job(plan, id, quarantine_key)
      purged = purged + 1
      seen[id] = true
    elseif redis.call("HGET", meta_key, id) then
      status = STATUS.bad_state
    else
      status = STATUS.not_found
    end
    reply[#reply + 1] = id
    reply[#reply + 1] = status
    record[#record + 1] = id .. " " .. status
  end
  remember_request(plan, request_id, "purge", table.concat(record, ","), window_ms)
  plan_apply(plan)
  reply[2] = purged
  return reply
end
if state == "quarantine" then return purge_quarantined() end

local jobs, unread
if from_set then
  ids, jobs, unread = walk_set(meta_key, set_key, nil, limit)
else
  jobs, unread = jobs_read(meta_key, ids)
end
for _, id in ipairs(ids) do
  local job = jobs[id]
  local status = STATUS.ok
  if unread[id] then
    status = STATUS.unreadable
    if from_set then set_aside(plan, id, unread[id], set_key, "in a finished set") end
  elseif not job or seen[id] then
    status = STATUS.not_found
  elseif job.state ~= state then
    status = STATUS.bad_state
  elseif job.stub then
    delete_job(plan, id, stubs_key)
  else
    delete_job(plan, id, set_key)
  end
  if status == STATUS.ok then
    purged = purged + 1
    seen[id] = true
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = status
  record[#record + 1] = id .. " " .. status
end
remember_request(plan, request_id, "purge", table.concat(record, ","), window_ms)
plan_apply(plan)
reply[2] = purged
return reply
