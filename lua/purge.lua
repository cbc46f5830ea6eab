#!lua flags=allow-oom
--[[
purge: delete finished jobs (completed, dead or cancelled) for good, by id or oldest first.
Active and waiting jobs are never purged: cancel them first.

Runs under OOM (allow-oom): it only deletes.

KEYS[1] meta       (HASH)  job id -> job record
KEYS[2] payload    (HASH)  job id -> payload bytes
KEYS[3] completed  (ZSET)  completed job ids by record expiry
KEYS[4] dead       (ZSET)  dead job ids by record expiry
KEYS[5] cancelled  (ZSET)  cancelled job ids by record expiry
KEYS[6] result     (HASH)  job id -> result bytes
KEYS[7] error      (HASH)  job id -> last error text

ARGV[1] state    which finished state: completed, dead or cancelled
ARGV[2] limit    with no ids: how many of that state's oldest records to delete (1..MAX_BATCH)
ARGV[3..] ids    the jobs to delete (at most MAX_BATCH); none = the oldest `limit`

Reply:  {STATUS.ok, purged, id_1, status_1, ...}: status_i is ok (deleted), not_found, or
          bad_state (the job is not in that state; nothing about it changed)
        {STATUS.bad_arg, name}; nothing is written

Invariants: a purged job leaves no trace: record, payload, result, error and set entry go.
--]]
-- @include status
-- @include args
-- @include bulk
-- @include job
-- @include delete_jobs

local meta_key, payload_key, completed_key, dead_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cancelled_key, result_key, error_key = KEYS[5], KEYS[6], KEYS[7]

local set_for_state = {
  [STATE.completed] = completed_key, [STATE.dead] = dead_key, [STATE.cancelled] = cancelled_key,
}
local state = ARGV[1]
local set_key = set_for_state[state]
if not set_key then return {STATUS.bad_arg, "state"} end
local limit = int_arg(ARGV[2], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
if #ARGV - 2 > MAX_BATCH then return {STATUS.bad_arg, "ids"} end
local ids = {}
for i = 3, #ARGV do
  if not id_arg(ARGV[i]) then return {STATUS.bad_arg, "id"} end
  ids[#ids + 1] = ARGV[i]
end

if #ids == 0 then ids = redis.call("ZRANGE", set_key, 0, limit - 1) end
local reply, victims = {STATUS.ok, 0}, {}
for _, id in ipairs(ids) do
  local job = job_load(meta_key, id)
  local status = STATUS.ok
  if not job then
    status = STATUS.not_found
  elseif job.state ~= state then
    status = STATUS.bad_state
  else
    victims[#victims + 1] = id
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = status
end
if #victims > 0 then
  redis.call("ZREM", set_key, unpack(victims))
  delete_jobs(meta_key, payload_key, result_key, error_key, victims)
end
reply[2] = #victims
return reply
