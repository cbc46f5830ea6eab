-- Reading job records, and setting aside the ones this code cannot read.

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

-- set_aside: a record found in the ZSET `set_key` that this code cannot read. A corrupt one
-- leaves that set for the quarantine (scored by when), its reason in the error hash; trimming
-- never touches the quarantine. A newer one is left where it is, untouched, and noted in the
-- unreadable ZSET (scored by when this code last met it), which stats counts.
local function set_aside(plan, id, why, set_key, where)
  if why == UNREADABLE.corrupt then
    plan_zset(plan, set_key, id, nil)
    plan_zset(plan, plan.keys.quarantine, id, plan.now)
    plan_hash(plan, plan.keys.error, id, "quarantined: a corrupt record, found " .. where)
  else
    plan_zset(plan, plan.keys.unreadable, id, plan.now)
  end
end
