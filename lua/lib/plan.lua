-- A plan holds every write a script has decided on; plan_apply sends them at the end, one
-- command per key and kind (chunked for unpack). Scripts read and decode everything first,
-- decide into a plan, then apply it: nothing between the first write and the last can fail,
-- so no script ever stops half-way with a job in no set. A script with stages (claim: first
-- the maintenance, then the leases) applies one plan per stage, each decided before it writes.
--
-- Each member of a ZSET and each field of a HASH has one fate in a plan, the last one planned:
-- a score or a value, or removal (false). So a job leaving a set and entering it again in one
-- plan (a lease extended, a job promoted and leased) is one ZADD, never a ZADD undone by a ZREM.
-- `keys` maps key part names to the script's keys (a table of *_key locals, bound from KEYS).
local function plan_new(keys, now)
  return {keys = keys, now = now, zsets = {}, hashes = {}, seq = nil, seq_used = 0, wake = 0}
end

local function plan_fate(store, key, member, fate)
  if key == nil then error("a script planned a write to a key it does not take") end
  local entry = store[key]
  if entry == nil then
    entry = {members = {}, fates = {}}
    store[#store + 1] = key
    store[key] = entry
  end
  if entry.fates[member] == nil then entry.members[#entry.members + 1] = member end
  entry.fates[member] = fate
end

-- plan_zset: `member` of the ZSET `set_key` gets `score`, or is removed when score is nil.
local function plan_zset(plan, set_key, member, score)
  plan_fate(plan.zsets, set_key, member, score or false)
end

-- plan_hash: `field` of the HASH `hash_key` gets `value`, or is deleted when value is nil.
local function plan_hash(plan, hash_key, field, value)
  plan_fate(plan.hashes, hash_key, field, value or false)
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

-- The members of one entry by fate: those to remove, and those to set, flat as the command
-- takes them (score before member for ZADD, field before value for HSET).
local function split_fates(entry, score_first)
  local sets, removes = {}, {}
  for _, member in ipairs(entry.members) do
    local fate = entry.fates[member]
    if fate == false then
      removes[#removes + 1] = member
    elseif score_first then
      sets[#sets + 1] = fate
      sets[#sets + 1] = member
    else
      sets[#sets + 1] = member
      sets[#sets + 1] = fate
    end
  end
  return sets, removes
end

local function apply_hash(hash_key, entry)
  local sets, removes = split_fates(entry, false)
  for first, last in chunk_ranges(#removes, 1) do
    redis.call("HDEL", hash_key, unpack(removes, first, last))
  end
  for first, last in chunk_ranges(#sets, 2) do
    redis.call("HSET", hash_key, unpack(sets, first, last))
  end
end

local function apply_zset(set_key, entry)
  local sets, removes = split_fates(entry, true)
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
