#!lua
--[[
requeue: move dead jobs back to waiting with a fresh attempt budget (attempt = 0), by id or the
oldest ones first. The last error is kept until the job fails again.

KEYS[1] clock    (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta     (HASH)    job id -> job record
KEYS[3] ready    (ZSET)    waiting job ids by priority, then FIFO
KEYS[4] dead     (ZSET)    dead job ids by record expiry
KEYS[5] seq      (STRING)  FIFO counter
KEYS[6] wake     (LIST)    wake-up tokens for idle workers

ARGV[1] limit    with no ids: how many of the oldest dead jobs to requeue (1..MAX_BATCH)
ARGV[2..] ids    the jobs to requeue (at most MAX_BATCH); none = the oldest `limit`

Reply:  {STATUS.ok, requeued, id_1, status_1, ...}: status_i is ok (waiting now), not_found, or
          bad_state (the job is not dead; nothing about it changed)
        {STATUS.bad_arg, name}; nothing is written

Invariants: only dead jobs move; each moves from the dead ZSET to the ready ZSET.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready

local clock_key, meta_key, ready_key, dead_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seq_key, wake_key = KEYS[5], KEYS[6]

local limit = int_arg(ARGV[1], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
if #ARGV - 1 > MAX_BATCH then return {STATUS.bad_arg, "ids"} end
local ids = {}
for i = 2, #ARGV do
  if not id_arg(ARGV[i]) then return {STATUS.bad_arg, "id"} end
  ids[#ids + 1] = ARGV[i]
end

local now = now_ms(clock_key)
if #ids == 0 then ids = redis.call("ZRANGE", dead_key, 0, limit - 1) end
local reply, moved, priorities = {STATUS.ok, 0}, {}, {}
for _, id in ipairs(ids) do
  local job = job_load(meta_key, id)
  local status = STATUS.ok
  if not job then
    status = STATUS.not_found
  elseif job.state ~= STATE.dead then
    status = STATUS.bad_state
  else
    redis.call("ZREM", dead_key, id)
    job.state = STATE.waiting
    job.attempt = 0
    job.outcome = OUTCOME.none
    job.finished_ms = 0
    job.ready_ms = now
    job_save(meta_key, id, job)
    moved[#moved + 1] = id
    priorities[#priorities + 1] = job.priority
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = status
end
ready_push(ready_key, seq_key, wake_key, moved, priorities)
reply[2] = #moved
return reply
