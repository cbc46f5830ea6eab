#!lua flags=no-writes
--[[
stats: a snapshot of a queue, the monitor's view. Read-only and bounded.

KEYS[1]  meta        (HASH)  job id -> job record
KEYS[2]  ready       (ZSET)  waiting job ids by priority, then FIFO
KEYS[3]  delayed     (ZSET)  delayed job ids by run-at time
KEYS[4]  active      (ZSET)  leased job ids by lease deadline
KEYS[5]  running     (ZSET)  leased job ids whose handler began, by lease deadline
KEYS[6]  completed   (ZSET)  completed job ids by record expiry
KEYS[7]  dead        (ZSET)  dead job ids by record expiry
KEYS[8]  cancelled   (ZSET)  cancelled job ids by record expiry
KEYS[9]  stubs       (ZSET)  ids of trimmed jobs kept as stubs
KEYS[10] quarantine  (ZSET)  ids of corrupt records, by when they were set aside
KEYS[11] unreadable  (ZSET)  ids of records of a newer version, by when last met

ARGV[1] active_limit  how many active jobs to list, soonest deadline first (0..MAX_BATCH)

Reply:  {STATUS.ok, now_ms,
         {waiting, delayed, active, completed, dead, cancelled},   counts
         oldest_waiting_ms,   when the longest-waiting ready job became ready (0 = none)
         {id, worker, attempt, deadline_ms, leased_ms, started_ms, ...},   active jobs, 6 values
           each (started_ms 0: leased, its handler not begun or not reported yet)
         {running, stubs, quarantined, newer}}: active jobs whose handler began; stubs kept
           for the repeat window; corrupt records in quarantine; records of a newer version met
           in the last 10 minutes (left untouched)
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
-- @include records

local meta_key, ready_key, delayed_key, active_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local running_key, completed_key, dead_key, cancelled_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local stubs_key, quarantine_key, unreadable_key = KEYS[9], KEYS[10], KEYS[11]


local active_limit = int_arg(ARGV[1], 0, MAX_BATCH)
if not active_limit or #ARGV ~= 1 then return {STATUS.bad_arg, "active_limit"} end

local now = now_ms()
local counts = {}
for i, set_key in ipairs({ready_key, delayed_key, active_key, completed_key, dead_key,
                         cancelled_key}) do
  counts[i] = redis.call("ZCARD", set_key)
end
local extra = {
  redis.call("ZCARD", running_key), redis.call("ZCARD", stubs_key),
  redis.call("ZCARD", quarantine_key),
  redis.call("ZCOUNT", unreadable_key, now - UNREADABLE_MEMORY_MS, "+inf"),
}

local oldest = 0
local function consider(ids, first_only)
  local jobs = jobs_read(meta_key, ids)
  for _, id in ipairs(ids) do
    local job = jobs[id]
    if job and (oldest == 0 or job.ready_ms < oldest) then oldest = job.ready_ms end
    if job and first_only then return end
  end
end

-- Within a band, jobs wait in the order they became ready, except handed-back jobs (seq 0),
-- which stand first: look at up to 16 of those, then at the first readable job after them
-- (of the next 4: a record of a newer version at the head is passed over).
local band_start = "-inf"
for _ = 1, 64 do
  local head = redis.call("ZRANGEBYSCORE", ready_key, band_start, "+inf", "WITHSCORES", "LIMIT", 0, 1)
  if #head == 0 then break end
  local band_first = math.floor(tonumber(head[2]) / SEQ_SPAN) * SEQ_SPAN
  local band_next = band_first + SEQ_SPAN
  consider(redis.call("ZRANGEBYSCORE", ready_key, band_first, band_first, "LIMIT", 0, 16), false)
  consider(redis.call("ZRANGEBYSCORE", ready_key, band_first + 1, band_next - 1, "LIMIT", 0, 4),
    true)
  band_start = band_next
end

local active = {}
if active_limit > 0 then
  local ids = redis.call("ZRANGE", active_key, 0, active_limit - 1)
  local jobs = jobs_read(meta_key, ids)
  for _, id in ipairs(ids) do
    local job = jobs[id]
    if job then
      for _, v in ipairs({id, job.worker, job.attempt, job.deadline_ms, job.leased_ms,
                          job.started_ms}) do
        active[#active + 1] = v
      end
    end
  end
end
return {STATUS.ok, now, counts, oldest, active, extra}
