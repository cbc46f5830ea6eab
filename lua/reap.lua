#!lua flags=allow-oom
--[[
reap: the periodic maintenance of a queue, bounded per call. Promotes due delayed jobs, ends
expired leases (back to waiting, or to the dead letters once attempts are used up), drops
running-set entries whose lease is over, trims
finished records past their retention or over their count, deletes stubs whose repeat window
has ended, forgets old request records, and forgets newer-version records not met for
UNREADABLE_MEMORY_MS. Workers run it about once a second, so recovery does not depend on claims.

Runs under OOM (allow-oom): it only moves and deletes, so a full server can still drain.

KEYS[1]  meta         (HASH)    job id -> job record
KEYS[2]  payload      (HASH)    job id -> payload bytes
KEYS[3]  ready        (ZSET)    waiting job ids by priority, then FIFO
KEYS[4]  delayed      (ZSET)    delayed job ids by run-at time
KEYS[5]  active       (ZSET)    leased job ids by lease deadline
KEYS[6]  running      (ZSET)    leased job ids whose handler began, by lease deadline
KEYS[7]  completed    (ZSET)    completed job ids by record expiry
KEYS[8]  dead         (ZSET)    dead job ids by record expiry
KEYS[9]  cancelled    (ZSET)    cancelled job ids by record expiry
KEYS[10] stubs        (ZSET)    ids of trimmed jobs kept as stubs, by when the stub goes
KEYS[11] result       (HASH)    job id -> result bytes
KEYS[12] error        (HASH)    job id -> last error text
KEYS[13] seq          (STRING)  FIFO counter
KEYS[14] requests     (HASH)    request id -> what that claim, requeue or purge did
KEYS[15] request_exp  (ZSET)    request id by forget time
KEYS[16] wake         (LIST)    wake-up tokens for idle workers
KEYS[17] quarantine   (ZSET)    ids of corrupt records, by when they were set aside
KEYS[18] unreadable   (ZSET)    ids of records of a newer version, by when last met

ARGV[1] limit          the most items of each kind handled in this call (1..MAX_BATCH)
ARGV[2] max_completed  the most completed records to keep (0..10^9)
ARGV[3] max_dead       the most dead records to keep (0..10^9)
ARGV[4] max_cancelled  the most cancelled records to keep (0..10^9)
ARGV[5] window_ms      the repeat window: count trimming keeps a stub this long (1..MAX_MS)

Reply:  {STATUS.ok, promoted, requeued, dead, trimmed}: trimmed counts records deleted or made
          stubs, and stubs deleted
        {STATUS.bad_arg, name}; nothing is written

Invariants: an expired lease counts as an attempt; a job is dead-lettered by expiry only when
attempt >= max_attempts; every step is bounded by limit.
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
-- @include trim
-- @include requests

local meta_key, payload_key, ready_key, delayed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local active_key, running_key, completed_key, dead_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local cancelled_key, stubs_key, result_key, error_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local seq_key, requests_key, request_exp_key, wake_key = KEYS[13], KEYS[14], KEYS[15], KEYS[16]
local quarantine_key, unreadable_key = KEYS[17], KEYS[18]


local limit = int_arg(ARGV[1], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
local max_completed = int_arg(ARGV[2], 0, 1000000000)
if not max_completed then return {STATUS.bad_arg, "max_completed"} end
local max_dead = int_arg(ARGV[3], 0, 1000000000)
if not max_dead then return {STATUS.bad_arg, "max_dead"} end
local max_cancelled = int_arg(ARGV[4], 0, 1000000000)
if not max_cancelled then return {STATUS.bad_arg, "max_cancelled"} end
local window_ms = int_arg(ARGV[5], 1, MAX_MS)
if not window_ms then return {STATUS.bad_arg, "window_ms"} end
if #ARGV ~= 5 then return {STATUS.bad_arg, "argv"} end

local now = now_ms()
local K = {
  meta = meta_key, payload = payload_key, ready = ready_key, delayed = delayed_key,
  active = active_key, running = running_key, completed = completed_key, dead = dead_key,
  cancelled = cancelled_key, stubs = stubs_key, result = result_key, error = error_key,
  seq = seq_key, requests = requests_key, request_exp = request_exp_key, wake = wake_key,
  quarantine = quarantine_key, unreadable = unreadable_key,
}

-- Stage 1: promote and expire (into the finished sets that stage 2 trims).
local moves = plan_new(K, now)
local promoted = promote_due(moves, delayed_key, limit)
local requeued, dead = expire_leases(moves, active_key, limit)
plan_apply(moves)

-- Stage 2: the running set's entries past their deadline (left by expired leases, or by an
-- older version of this code).
local tidy = plan_new(K, now)
tidy_running(tidy, running_key, limit)
plan_apply(tidy)

-- Stage 3: trim, forget.
local trim = plan_new(K, now)
local trimmed = 0
for _, pair in ipairs({{completed_key, max_completed}, {dead_key, max_dead},
                      {cancelled_key, max_cancelled}}) do
  trimmed = trimmed + trim_finished(trim, pair[1], pair[2], limit, window_ms)
end
trimmed = trimmed + trim_stubs(trim, stubs_key, limit)
forget_requests(trim, request_exp_key, limit)
local forgotten = redis.call("ZRANGEBYSCORE", unreadable_key, "-inf", now - UNREADABLE_MEMORY_MS,
  "LIMIT", 0, limit)
for _, id in ipairs(forgotten) do plan_zset(trim, unreadable_key, id, nil) end
plan_apply(trim)
return {STATUS.ok, promoted, requeued, dead, trimmed}
