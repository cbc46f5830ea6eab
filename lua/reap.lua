#!lua flags=allow-oom
--[[
reap: the periodic maintenance of a queue, bounded per call. Promotes due delayed jobs, ends
expired leases (back to waiting, or to the dead letters once attempts are used up), trims
finished records past their retention or over their count, and forgets old claim records.
Claims do the first two as well; this script makes recovery independent of claim traffic.

Runs under OOM (allow-oom): it only moves and deletes, so a full server can still drain.

KEYS[1]  clock      (STRING)  test-only clock offset, see lib/now.lua
KEYS[2]  meta       (HASH)    job id -> job record
KEYS[3]  payload    (HASH)    job id -> payload bytes
KEYS[4]  ready      (ZSET)    waiting job ids by priority, then FIFO
KEYS[5]  delayed    (ZSET)    delayed job ids by run-at time
KEYS[6]  active     (ZSET)    leased job ids by lease deadline
KEYS[7]  completed  (ZSET)    completed job ids by record expiry
KEYS[8]  dead       (ZSET)    dead job ids by record expiry
KEYS[9]  cancelled  (ZSET)    cancelled job ids by record expiry
KEYS[10] result     (HASH)    job id -> result bytes
KEYS[11] error      (HASH)    job id -> last error text
KEYS[12] seq        (STRING)  FIFO counter
KEYS[13] claims     (HASH)    claim id -> jobs leased by that claim
KEYS[14] claim_exp  (ZSET)    claim id by forget time
KEYS[15] wake       (LIST)    wake-up tokens for idle workers

ARGV[1] limit          the most items of each kind handled in this call (1..MAX_BATCH)
ARGV[2] max_completed  the most completed records to keep (0..10^9)
ARGV[3] max_dead       the most dead records to keep (0..10^9)
ARGV[4] max_cancelled  the most cancelled records to keep (0..10^9)

Reply:  {STATUS.ok, promoted, requeued, dead, trimmed}
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
-- @include finish_job
-- @include delete_jobs
-- @include trim_finished
-- @include promote_due
-- @include reap_expired
-- @include forget_claims

local clock_key, meta_key, payload_key, ready_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayed_key, active_key, completed_key, dead_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local cancelled_key, result_key, error_key, seq_key = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local claims_key, claim_exp_key, wake_key = KEYS[13], KEYS[14], KEYS[15]

local limit = int_arg(ARGV[1], 1, MAX_BATCH)
if not limit then return {STATUS.bad_arg, "limit"} end
local max_completed = int_arg(ARGV[2], 0, 1000000000)
if not max_completed then return {STATUS.bad_arg, "max_completed"} end
local max_dead = int_arg(ARGV[3], 0, 1000000000)
if not max_dead then return {STATUS.bad_arg, "max_dead"} end
local max_cancelled = int_arg(ARGV[4], 0, 1000000000)
if not max_cancelled then return {STATUS.bad_arg, "max_cancelled"} end
if #ARGV ~= 4 then return {STATUS.bad_arg, "argv"} end

local now = now_ms(clock_key)
local promoted = promote_due(delayed_key, ready_key, meta_key, seq_key, wake_key, now, limit)
local requeued, dead = reap_expired(active_key, ready_key, dead_key, meta_key, seq_key, wake_key,
  error_key, now, limit)
local trimmed = 0
for _, pair in ipairs({{completed_key, max_completed}, {dead_key, max_dead},
                      {cancelled_key, max_cancelled}}) do
  trimmed = trimmed + trim_finished(pair[1], meta_key, payload_key, result_key, error_key, now,
    pair[2], limit)
end
forget_claims(claims_key, claim_exp_key, now, limit)
return {STATUS.ok, promoted, requeued, dead, trimmed}
