#!lua flags=allow-oom
--[[
claim: lease up to `count` waiting jobs to one worker, in one atomic call.

Before it claims it promotes due delayed jobs and reaps expired leases (each bounded), so a
queue with live workers needs no separate reaper to recover a dead worker's jobs.

Runs under OOM (allow-oom): a claim moves jobs rather than adding them, so a full server can
still drain its queue while enqueue is refused.

KEYS[1]  clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2]  meta       (HASH)    job id -> job record
KEYS[3]  payload    (HASH)    job id -> payload bytes
KEYS[4]  ready      (ZSET)    waiting job ids by priority, then FIFO
KEYS[5]  delayed    (ZSET)    delayed job ids by run-at time
KEYS[6]  active     (ZSET)    leased job ids by lease deadline
KEYS[7]  dead       (ZSET)    dead job ids by record expiry
KEYS[8]  error      (HASH)    job id -> last error text
KEYS[9]  seq        (STRING)  FIFO counter
KEYS[10] claims     (HASH)    claim id -> "id token,id token,..." of the jobs that claim leased
KEYS[11] claim_exp  (ZSET)    claim id by the time its record may be forgotten (ms)
KEYS[12] wake       (LIST)    wake-up tokens for idle workers

ARGV[1] worker_id     the claiming worker (an id: 1-128 of [A-Za-z0-9_.:@/+=-])
ARGV[2] claim_id      client-made, unique per claim attempt (same charset)
ARGV[3] count         jobs wanted (1..MAX_BATCH)
ARGV[4] lease_ms      lease duration; 0 = each job's own lease_ms
ARGV[5] maintenance   how many due delayed jobs to promote and expired leases to reap (0..MAX_BATCH)

Reply:  {STATUS.ok, now_ms, id_1, payload_1, attempt_1, token_1, deadline_1, ...}
        {STATUS.empty, now_ms, next_ms} when no job is waiting; next_ms is the earliest time
          something may become claimable (the first delayed job's run-at time or the first
          lease deadline), 0 when there is none: an idle worker may wait until then
        {STATUS.duplicate, now_ms, ...jobs...} when claim_id was seen before: the jobs that claim
          leased and still hold that lease; nothing new is leased
        {STATUS.bad_arg, name}; nothing is written

Invariants: each leased job moves from ready to active in this call, with attempt + 1 (never
above max_attempts), a fresh token and a deadline from the server's clock; a claim id leases
jobs at most once.
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job
-- @include ready
-- @include lease
-- @include finish_job
-- @include promote_due
-- @include reap_expired
-- @include forget_claims

local clock_key, meta_key, payload_key, ready_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayed_key, active_key, dead_key, error_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local seq_key, claims_key, claim_exp_key, wake_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]

local worker_id = id_arg(ARGV[1])
if not worker_id then return {STATUS.bad_arg, "worker_id"} end
local claim_id = id_arg(ARGV[2])
if not claim_id then return {STATUS.bad_arg, "claim_id"} end
local count = int_arg(ARGV[3], 1, MAX_BATCH)
if not count then return {STATUS.bad_arg, "count"} end
local lease_override = int_arg(ARGV[4], 0, MAX_MS)
if not lease_override then return {STATUS.bad_arg, "lease_ms"} end
local maintenance = int_arg(ARGV[5], 0, MAX_BATCH)
if not maintenance then return {STATUS.bad_arg, "maintenance"} end
if #ARGV ~= 5 then return {STATUS.bad_arg, "argv"} end

local now = now_ms(clock_key)

-- A repeated claim (a retry after a lost reply) answers with what the first one leased.
local previous = redis.call("HGET", claims_key, claim_id)
if previous then
  local reply = {STATUS.duplicate, now}
  for id, token in string.gmatch(previous, "([^ ,]+) ([^ ,]+)") do
    local job = job_load(meta_key, id)
    if lease_current(job, token, now) then
      local body = redis.call("HGET", payload_key, id) or ""
      for _, v in ipairs({id, body, job.attempt, token, job.deadline_ms}) do
        reply[#reply + 1] = v
      end
    end
  end
  return reply
end

if maintenance > 0 then
  promote_due(delayed_key, ready_key, meta_key, seq_key, wake_key, now, maintenance)
  reap_expired(active_key, ready_key, dead_key, meta_key, seq_key, wake_key, error_key, now,
    maintenance)
  forget_claims(claims_key, claim_exp_key, now, maintenance)
end

-- The earliest time at which a job may become claimable without an enqueue.
local function next_event_ms()
  local next_ms = 0
  for _, set_key in ipairs({delayed_key, active_key}) do
    local first = redis.call("ZRANGE", set_key, 0, 0, "WITHSCORES")
    if #first > 0 then
      local at = tonumber(first[2])
      if next_ms == 0 or at < next_ms then next_ms = at end
    end
  end
  return next_ms
end

local popped = redis.call("ZPOPMIN", ready_key, count)
if #popped == 0 then return {STATUS.empty, now, next_event_ms()} end

-- Every read and write below covers the whole batch in one call: HMGET the records and the
-- payloads, then one HSET of the records and one ZADD into active.
local ids = {}
for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
local jobs = jobs_load(meta_key, ids)
local bodies = redis.call("HMGET", payload_key, unpack(ids))
local reply, record, leased, deadlines, last_deadline = {STATUS.ok, now}, {}, {}, {}, now
for i, id in ipairs(ids) do
  local job = jobs[id]
  if job and job.state == STATE.waiting then
    local lease = lease_override
    if lease == 0 then lease = job.lease_ms end
    job.state = STATE.active
    job.attempt = job.attempt + 1
    job.token = new_token(job.attempt, claim_id, i, now)
    job.outcome = OUTCOME.running
    job.deadline_ms = now + lease
    job.worker = worker_id
    job.started_ms = now
    local n = #reply
    reply[n + 1], reply[n + 2], reply[n + 3] = id, bodies[i] or "", job.attempt
    reply[n + 4], reply[n + 5] = job.token, job.deadline_ms
    leased[#leased + 1] = id
    deadlines[#deadlines + 1] = job.deadline_ms
    deadlines[#deadlines + 1] = id
    record[#record + 1] = id .. " " .. job.token
    if job.deadline_ms > last_deadline then last_deadline = job.deadline_ms end
  end
end
if #leased == 0 then return {STATUS.empty, now, next_event_ms()} end
jobs_save(meta_key, leased, jobs)
for first, last in chunk_ranges(#deadlines, 2) do
  redis.call("ZADD", active_key, unpack(deadlines, first, last))
end
redis.call("HSET", claims_key, claim_id, table.concat(record, ","))
redis.call("ZADD", claim_exp_key, last_deadline, claim_id)
return reply
