#!lua flags=allow-oom
--[[
claim: lease up to `count` waiting jobs to one worker, in one atomic call.

Before it claims it promotes due delayed jobs and ends expired leases (each bounded), so a
queue with live workers recovers a dead worker's jobs even between two reaps.

Runs under OOM (allow-oom): a claim moves jobs rather than adding them, so a full server can
still drain its queue while enqueue is refused.

KEYS[1]  meta         (HASH)    job id -> job record
KEYS[2]  payload      (HASH)    job id -> payload bytes
KEYS[3]  ready        (ZSET)    waiting job ids by priority, then FIFO
KEYS[4]  delayed      (ZSET)    delayed job ids by run-at time
KEYS[5]  active       (ZSET)    leased job ids by lease deadline
KEYS[6]  running      (ZSET)    leased job ids whose handler began, by lease deadline
KEYS[7]  dead         (ZSET)    dead job ids by record expiry
KEYS[8]  error        (HASH)    job id -> last error text
KEYS[9]  seq          (STRING)  FIFO counter
KEYS[10] requests     (HASH)    request id -> what that claim leased: "id token,id token,..."
KEYS[11] request_exp  (ZSET)    request id by the time its record is forgotten (ms)
KEYS[12] wake         (LIST)    wake-up tokens for idle workers
KEYS[13] quarantine   (ZSET)    ids of corrupt records, by when they were set aside
KEYS[14] unreadable   (ZSET)    ids of records of a newer version, by when last met

ARGV[1] worker_id     the claiming worker (an id: 1-128 of [A-Za-z0-9_.:@/+=-])
ARGV[2] claim_id      client-made, unique per claim attempt (same charset)
ARGV[3] count         jobs wanted (1..MAX_BATCH)
ARGV[4] lease_ms      lease duration; 0 = each job's own lease_ms
ARGV[5] maintenance   how many due delayed jobs to promote and expired leases to end, and old
                      request records to forget, before claiming (0..MAX_BATCH)
ARGV[6] max_bytes     byte budget: no job is leased once the payloads leased reach it, but the
                      first job always is (1..MAX_CALL_BYTES)
ARGV[7] window_ms     the repeat window: how long the claim id is remembered (1..MAX_MS)

Reply:  {STATUS.ok, now_ms, id_1, payload_1, attempt_1, token_1, deadline_1, ...}
        {STATUS.empty, now_ms, next_ms} when no job could be leased; next_ms is the earliest time
          after now at which something may become claimable (the first delayed job's run-at
          time or the first lease deadline still ahead), 0 when there is none: an idle worker
          may wait until then
        {STATUS.duplicate, now_ms, ...jobs...} when claim_id was seen within the repeat window:
          the jobs that claim leased and still hold that lease; nothing new is leased
        {STATUS.bad_arg, name}; nothing is written (also "claim_id" for an id a requeue or
          purge used within the window)

Invariants: each leased job moves from ready to active in this call, with attempt + 1 (never
above max_attempts), a fresh token and a deadline from the server's clock; a claim id leases
jobs at most once within the repeat window. A record this code cannot read is never leased: a
corrupt one is quarantined, a newer one left where it is.
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
-- @include promote_due
-- @include expire_leases
-- @include requests

local meta_key, payload_key, ready_key, delayed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local active_key, running_key, dead_key, error_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local seq_key, requests_key, request_exp_key, wake_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local quarantine_key, unreadable_key = KEYS[13], KEYS[14]

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
local max_bytes = int_arg(ARGV[6], 1, MAX_CALL_BYTES)
if not max_bytes then return {STATUS.bad_arg, "max_bytes"} end
local window_ms = int_arg(ARGV[7], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
if #ARGV ~= 7 then return {STATUS.bad_arg, "argv"} end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, ready = ready_key, delayed = delayed_key,
  active = active_key, running = running_key, dead = dead_key, error = error_key,
  seq = seq_key, requests = requests_key, request_exp = request_exp_key, wake = wake_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}

-- `reply` (its status and now) followed by each lease of `ids`, with its payload.
local function with_leases(reply, ids, jobs)
  local bodies = {}
  if #ids > 0 then bodies = redis.call("HMGET", payload_key, unpack(ids)) end
  for i, id in ipairs(ids) do
    local job = jobs[id]
    local n = #reply
    reply[n + 1], reply[n + 2], reply[n + 3] = id, bodies[i] or "", job.attempt
    reply[n + 4], reply[n + 5] = job.token, job.deadline_ms
  end
  return reply
end

-- A repeated claim (a retry after a lost reply) answers with what the first one leased.
local previous = recall_request(requests_key, claim_id, "claim")
if previous == false then return {STATUS.bad_arg, "claim_id"} end
if previous then
  local ids, tokens = {}, {}
  for id, token in string.gmatch(previous, "([^ ,]+) ([^ ,]+)") do
    ids[#ids + 1] = id
    tokens[#tokens + 1] = token
  end
  local jobs = jobs_read(meta_key, ids)
  local current = {}
  for i, id in ipairs(ids) do
    if lease_current(jobs[id], tokens[i], now) then current[#current + 1] = id end
  end
  return with_leases({STATUS.duplicate, now}, current, jobs)
end

-- Stage 1, maintenance: promote, expire, forget; decided, then written.
if maintenance > 0 then
  local upkeep = plan_new(K, now)
  promote_due(upkeep, delayed_key, maintenance)
  expire_leases(upkeep, active_key, maintenance)
  forget_requests(upkeep, request_exp_key, maintenance)
  plan_apply(upkeep)
end

-- The earliest time after now at which a job may become claimable without an enqueue (one
-- due already, but past this call's maintenance or of a newer version, is not named: an idle
-- worker would claim again at once, in a loop).
local function next_event_ms()
  local next_ms = 0
  for _, set_key in ipairs({delayed_key, active_key}) do
    local after = "(" .. string.format("%d", now)
    local first = redis.call("ZRANGEBYSCORE", set_key, after, "+inf", "WITHSCORES", "LIMIT", 0, 1)
    if #first > 0 then
      local at = tonumber(first[2])
      if next_ms == 0 or at < next_ms then next_ms = at end
    end
  end
  return next_ms
end

-- Stage 2, the leases: the first `count` waiting jobs, read and decided, then written.
local head, jobs, unread = walk_set(meta_key, ready_key, nil, count)
local plan = plan_new(K, now)
local leased, record, bytes = {}, {}, 0
for i, id in ipairs(head) do
  local job = jobs[id]
  if unread[id] then
    set_aside(plan, id, unread[id], ready_key, "in the ready set")
  elseif job == nil or job.state ~= STATE.waiting then
    plan_zset(plan, ready_key, id, nil)  -- a stray member with no waiting record
  else
    local size = job.payload_bytes
    if size < 0 then size = redis.call("HSTRLEN", payload_key, id) end
    if #leased > 0 and bytes + size > max_bytes then break end
    bytes = bytes + size
    local lease = lease_override
    if lease == 0 then lease = job.lease_ms end
    job.attempt = job.attempt + 1
    job.token = new_token(job.attempt, claim_id, i, now)
    job.outcome = OUTCOME.running
    job.worker = worker_id
    job.leased_ms = now
    job.started_ms = 0
    to_active(plan, id, job, now + lease)
    leased[#leased + 1] = id
    record[#record + 1] = id .. " " .. job.token
  end
end
if #leased > 0 then remember_request(plan, claim_id, "claim", table.concat(record, ","), window_ms) end
plan_apply(plan)
if #leased == 0 then return {STATUS.empty, now, next_event_ms()} end
return with_leases({STATUS.ok, now}, leased, jobs)
