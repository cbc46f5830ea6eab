#!lua flags=allow-oom
--[[
heartbeat: extend many leases in one call; fenced by each lease token. The reply names the jobs
whose lease is lost, so the worker can stop them instead of finishing work it no longer owns.
The worker also reports here which leases' handlers have begun (a job is leased when a claim
hands it out, started when its handler begins), so stats can tell running jobs from prefetched.

Runs under OOM (allow-oom): losing leases because the server is full would only add work.

KEYS[1] meta     (HASH)  job id -> job record
KEYS[2] active   (ZSET)  leased job ids by lease deadline
KEYS[3] running  (ZSET)  leased job ids whose handler began, by lease deadline

ARGV[1] lease_ms  new lease length from now; 0 = each job's own lease_ms (0..MAX_MS)
ARGV[2] n         number of items (1..MAX_BATCH)
ARGV[...] each item, 3 values: job id, lease token, started: how long ago (ms) its handler
          began, or -1 when it has not (-1..MAX_MS)

Reply:  {STATUS.ok, now_ms, {lost id, ...}, {deadline_1, ..., deadline_n}}: deadline_i is the new
          lease deadline, or 0 when item i's lease is lost (wrong token, expired, the job is
          gone or its record is one this code cannot read); a lost lease is never revived
        {STATUS.bad_arg, name}; nothing is written

Invariants: only a current, unexpired lease is extended; the active ZSET score (and the running
ZSET score of a started job) always equals the job record's deadline_ms.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include plan
-- @include records
-- @include lease

local meta_key, active_key, running_key = KEYS[1], KEYS[2], KEYS[3]

local lease_override = int_arg(ARGV[1], 0, MAX_MS)
if not lease_override then return {STATUS.bad_arg, "lease_ms"} end
local n = int_arg(ARGV[2], 1, MAX_BATCH)
if not n or #ARGV ~= 2 + 3 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[3 + 3 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[4 + 3 * i] > 64 then return {STATUS.bad_arg, "token"} end
  if not int_arg(ARGV[5 + 3 * i], -1, MAX_MS) then return {STATUS.bad_arg, "started"} end
end

local now = now_ms()
local K = {meta = meta_key, active = active_key, running = running_key}
local ids = {}
for i = 0, n - 1 do ids[i + 1] = ARGV[3 + 3 * i] end
local jobs = jobs_read(meta_key, ids)
local plan = plan_new(K, now)
local lost, deadlines = {}, {}
for i = 0, n - 1 do
  local id, token = ARGV[3 + 3 * i], ARGV[4 + 3 * i]
  local job = jobs[id]
  if lease_current(job, token, now) then
    local lease = lease_override
    if lease == 0 then lease = job.lease_ms end
    extend_lease(plan, id, job, now + lease, tonumber(ARGV[5 + 3 * i]))
    deadlines[i + 1] = job.deadline_ms
  else
    lost[#lost + 1] = id
    deadlines[i + 1] = 0
  end
end
plan_apply(plan)
return {STATUS.ok, now, lost, deadlines}
