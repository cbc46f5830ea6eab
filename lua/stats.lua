#!lua flags=no-writes
--[[
stats: a snapshot of a queue, the monitor's view. Read-only and bounded.

KEYS[1] clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta       (HASH)    job id -> job record
KEYS[3] ready      (ZSET)    waiting job ids by priority, then FIFO
KEYS[4] delayed    (ZSET)    delayed job ids by run-at time
KEYS[5] active     (ZSET)    leased job ids by lease deadline
KEYS[6] completed  (ZSET)    completed job ids by record expiry
KEYS[7] dead       (ZSET)    dead job ids by record expiry
KEYS[8] cancelled  (ZSET)    cancelled job ids by record expiry

ARGV[1] active_limit  how many active jobs to list, soonest deadline first (0..MAX_BATCH)

Reply:  {STATUS.ok, now_ms,
         {waiting, delayed, active, completed, dead, cancelled},   counts
         oldest_waiting_ms,   when the longest-waiting ready job became ready (0 = none)
         {id, worker, attempt, deadline_ms, started_ms, ...}}     active jobs, 5 values each
        {STATUS.bad_arg, name}

The longest-waiting job is the first job of one of the priority bands of the ready ZSET (after
any handed-back jobs, which stand first); the script visits at most 64 bands (priorities in
use), each in O(log n). oldest_waiting_ms is when that job entered the ready ZSET.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready

local clock_key, meta_key, ready_key, delayed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local active_key, completed_key, dead_key, cancelled_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local active_limit = int_arg(ARGV[1], 0, MAX_BATCH)
if not active_limit or #ARGV ~= 1 then return {STATUS.bad_arg, "active_limit"} end

local now = now_ms(clock_key)
local counts = {}
for i, set_key in ipairs({ready_key, delayed_key, active_key, completed_key, dead_key,
                         cancelled_key}) do
  counts[i] = redis.call("ZCARD", set_key)
end

local oldest = 0
local function consider(ids)
  for _, id in ipairs(ids) do
    local job = job_load(meta_key, id)
    if job and (oldest == 0 or job.ready_ms < oldest) then oldest = job.ready_ms end
  end
end

-- Within a band, jobs wait in the order they became ready, except handed-back jobs (seq 0),
-- which stand first: look at up to 16 of those, then at the first job after them.
local band_start = "-inf"
for _ = 1, 64 do
  local head = redis.call("ZRANGEBYSCORE", ready_key, band_start, "+inf", "WITHSCORES", "LIMIT", 0, 1)
  if #head == 0 then break end
  local band_first = math.floor(tonumber(head[2]) / SEQ_SPAN) * SEQ_SPAN
  local band_next = band_first + SEQ_SPAN
  consider(redis.call("ZRANGEBYSCORE", ready_key, band_first, band_first, "LIMIT", 0, 16))
  consider(redis.call("ZRANGEBYSCORE", ready_key, band_first + 1, band_next - 1, "LIMIT", 0, 1))
  band_start = band_next
end

local active = {}
if active_limit > 0 then
  local ids = redis.call("ZRANGE", active_key, 0, active_limit - 1)
  for _, id in ipairs(ids) do
    local job = job_load(meta_key, id)
    if job then
      for _, v in ipairs({id, job.worker, job.attempt, job.deadline_ms, job.started_ms}) do
        active[#active + 1] = v
      end
    end
  end
end
return {STATUS.ok, now, counts, oldest, active}
