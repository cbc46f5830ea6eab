-- A plan holds every write a script has decided on; plan_apply sends them at the end, one
-- command per key and kind (chunked for unpack). Scripts read and decode everything first,
-- decide into a plan, then apply it: nothing between the first write and the last can fail,
-- so no script ever stops half-way with a job in no set. A script with stages (claim: first
-- the maintenance, then the leases) applies one plan per stage, each decided before it writes.
--
-- For each key, plan_apply sends the removals (ZREM, HDEL) before the sets (ZADD, HSET), and
-- the sets in the order planned. So a member removed and then set again in one plan ends set
-- (a job leaving a set and coming back to it), and of two sets of one member the later wins;
-- a member set and then removed would end set: no script plans that (lib/lease.lua keeps a
-- handed-back job out of the running set rather than adding it there first).
-- `keys` maps key part names to the script's keys (a table of *_key locals, bound from KEYS).
local function plan_new(keys, now)
  return {keys = keys, now = now, zsets = {}, hashes = {}, seq = nil, seq_used = 0, wake = 0}
end

local function plan_entry(store, key)
  if key == nil then error("a script planned a write to a key it does not take") end
  local entry = store[key]
  if entry == nil then
    entry = {sets = {}, removes = {}}
    store[#store + 1] = key
    store[key] = entry
  end
  return entry
end

-- plan_zset: `member` of the ZSET `set_key` gets `score`, or is removed when score is nil.
local function plan_zset(plan, set_key, member, score)
  local entry = plan.zsets[set_key] or plan_entry(plan.zsets, set_key)
  if score == nil then
    entry.removes[#entry.removes + 1] = member
  else
    local sets = entry.sets
    sets[#sets + 1] = score
    sets[#sets + 1] = member
  end
end

-- plan_hash: `field` of the HASH `hash_key` gets `value`, or is deleted when value is nil.
local function plan_hash(plan, hash_key, field, value)
  local entry = plan.hashes[hash_key] or plan_entry(plan.hashes, hash_key)
  if value == nil then
    entry.removes[#entry.removes + 1] = field
  else
    local sets = entry.sets
    sets[#sets + 1] = field
    sets[#sets + 1] = value
  end
end

local function read_counter(seq_key)
  return tonumber(redis.call("GET", seq_key) or "0")
end

-- plan_seq: the next number of the queue's FIFO counter (read once, added to when applied).
local function plan_seq(plan)
  if plan.seq == nil then plan.seq = read_counter(plan.keys.seq) end
  plan.seq_used = plan.seq_used + 1
  return plan.seq + plan.seq_used
end

local function apply_hash(hash_key, entry)
  local removes, sets = entry.removes, entry.sets
  for first, last in chunk_ranges(#removes, 1) do
    redis.call("HDEL", hash_key, unpack(removes, first, last))
  end
  for first, last in chunk_ranges(#sets, 2) do
    redis.call("HSET", hash_key, unpack(sets, first, last))
  end
end

local function apply_zset(set_key, entry)
  local removes, sets = entry.removes, entry.sets
  for first, last in chunk_ranges(#removes, 1) do
    redis.call("ZREM", set_key, unpack(removes, first, last))
  end
  for first, last in chunk_ranges(#sets, 2) do
    redis.call("ZADD", set_key, unpack(sets, first, last))
  end
end

-- The FIFO numbers a plan used, and one wake token per job it made ready (WAKE_MAX at most).
local function apply_signals(plan, seq_key, wake_key)
  if plan.seq_used > 0 then redis.call("INCRBY", seq_key, plan.seq_used) end
  if plan.wake > 0 then
    local tokens = {}
    for i = 1, math.min(plan.wake, WAKE_MAX) do tokens[i] = "1" end
    if redis.call("LPUSH", wake_key, unpack(tokens)) > WAKE_MAX then
      redis.call("LTRIM", wake_key, 0, WAKE_MAX - 1)
    end
  end
end

-- plan_apply: every planned write, then the FIFO counter and the wake tokens.
local function plan_apply(plan)
  for _, hash_key in ipairs(plan.hashes) do apply_hash(hash_key, plan.hashes[hash_key]) end
  for _, set_key in ipairs(plan.zsets) do apply_zset(set_key, plan.zsets[set_key]) end
  apply_signals(plan, plan.keys.seq, plan.keys.wake)
end
