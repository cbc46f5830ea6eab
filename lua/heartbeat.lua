#!lua flags=allow-oom
--[[
heartbeat: extend many leases in one call; fenced by each lease token. The reply names the jobs
whose lease is lost, so the worker can stop them instead of finishing work it no longer owns.

Runs under OOM (allow-oom): losing leases because the server is full would only add work.

KEYS[1] clock   (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta    (HASH)    job id -> job record
KEYS[3] active  (ZSET)    leased job ids by lease deadline

ARGV[1] lease_ms  new lease length from now; 0 = each job's own lease_ms (0..MAX_MS)
ARGV[2] n         number of items (1..MAX_BATCH)
ARGV[...] each item, 2 values: job id, lease token

Reply:  {STATUS.ok, now_ms, {lost id, ...}, {deadline_1, ..., deadline_n}}: deadline_i is the new
          lease deadline, or 0 when item i's lease is lost (wrong token, expired, or the job
          is gone); a lost lease is never revived
        {STATUS.bad_arg, name}; nothing is written

Invariants: only a current, unexpired lease is extended; the active ZSET score always equals the
job record's deadline_ms.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include lease

local clock_key, meta_key, active_key = KEYS[1], KEYS[2], KEYS[3]

local lease_override = int_arg(ARGV[1], 0, MAX_MS)
if not lease_override then return {STATUS.bad_arg, "lease_ms"} end
local n = int_arg(ARGV[2], 1, MAX_BATCH)
if not n or #ARGV ~= 2 + 2 * n then return {STATUS.bad_arg, "n"} end
for i = 0, n - 1 do
  if not id_arg(ARGV[3 + 2 * i]) then return {STATUS.bad_arg, "id"} end
  if #ARGV[4 + 2 * i] > 64 then return {STATUS.bad_arg, "token"} end
end

local now = now_ms(clock_key)
local lost, deadlines = {}, {}
for i = 0, n - 1 do
  local id, token = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  local job = job_load(meta_key, id)
  if lease_current(job, token, now) then
    local lease = lease_override
    if lease == 0 then lease = job.lease_ms end
    job.deadline_ms = now + lease
    job_save(meta_key, id, job)
    redis.call("ZADD", active_key, job.deadline_ms, id)
    deadlines[i + 1] = job.deadline_ms
  else
    lost[#lost + 1] = id
    deadlines[i + 1] = 0
  end
end
return {STATUS.ok, now, lost, deadlines}
