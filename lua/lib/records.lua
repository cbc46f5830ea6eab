-- Reading job records (the ones this code cannot read are set aside: lib/moves.lua).

local UNREADABLE_MEMORY_MS = 600000  -- how long stats counts a newer record this code met

-- jobs_read: the records of `ids` in one HMGET per 1000 ids, decoded: `jobs` (id -> job) for
-- the records this code reads, `unread` (id -> UNREADABLE reason) for those it cannot; an id
-- with no record is in neither. Never raises.
local function jobs_read(meta_key, ids)
  local jobs, unread = {}, {}
  for first, last in chunk_ranges(#ids, 1) do
    local raws = redis.call("HMGET", meta_key, unpack(ids, first, last))
    for i = first, last do
      local raw = raws[i - first + 1]
      if raw then
        local job, why = job_decode(raw)
        if job then jobs[ids[i]] = job else unread[ids[i]] = why end
      end
    end
  end
  return jobs, unread
end

local PASS_OVER = 100  -- the most records of a newer version one walk passes over

-- range_ids: `count` ids of the ZSET `set_key` from position `offset`: by rank, or (with
-- max_score) among the members scored up to max_score.
local function range_ids(set_key, max_score, offset, count)
  if max_score == nil then
    return redis.call("ZRANGE", set_key, offset, offset + count - 1)
  end
  return redis.call("ZRANGEBYSCORE", set_key, "-inf", max_score, "LIMIT", offset, count)
end

-- walk_set: the first ids of a ZSET (by rank, or up to max_score, from position `start`), with
-- their records, until `limit` of them are ones this code may act on. Records of a newer
-- version are passed over (at most PASS_OVER in one walk): left where they are, they never
-- stop the jobs behind them. Returns the ids in order (those passed over too), `jobs` and
-- `unread` as jobs_read gives them, and the position after the last id read.
local function walk_set(meta_key, set_key, max_score, limit, start)
  local ids, jobs, unread = {}, {}, {}
  local offset, passed, want = start or 0, 0, limit
  while want > 0 do
    local batch = range_ids(set_key, max_score, offset, want)
    offset = offset + #batch
    local found, missing = jobs_read(meta_key, batch)
    local newer = 0
    for _, id in ipairs(batch) do
      ids[#ids + 1] = id
      jobs[id], unread[id] = found[id], missing[id]
      if missing[id] == UNREADABLE.newer then newer = newer + 1 end
    end
    passed = passed + newer
    if #batch < want then break end
    want = math.min(newer, PASS_OVER - passed)
  end
  return ids, jobs, unread, offset
end
