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
