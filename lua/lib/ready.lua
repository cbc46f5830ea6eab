-- The ready ZSET orders waiting jobs: higher priority first, first in first out within a priority.
-- score = (1000 - priority) * 2^42 + seq, exact in a double (< 2^53) for priority in -1000..1000
-- and seq below 2^42; seq comes from the queue's counter, so FIFO holds across calls.
local SEQ_SPAN = 4398046511104  -- 2^42

local function ready_score(priority, seq)
  return (1000 - priority) * SEQ_SPAN + (seq % SEQ_SPAN)
end

-- Push the jobs in `ids` (already saved as waiting) in order; one INCRBY for the whole batch.
local function ready_push(ready_key, seq_key, ids, priorities)
  local n = #ids
  if n == 0 then return end
  local last = redis.call("INCRBY", seq_key, n)
  local args = {}
  for i = 1, n do
    args[#args + 1] = ready_score(priorities[i], last - n + i)
    args[#args + 1] = ids[i]
    if #args >= 512 then  -- unpack() is bounded by the Lua stack: flush in chunks
      redis.call("ZADD", ready_key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call("ZADD", ready_key, unpack(args)) end
end
