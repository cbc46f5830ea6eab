-- The ready ZSET orders waiting jobs: higher priority first, first in first out within a priority.
-- score = (1000 - priority) * 2^42 + seq, exact in a double (< 2^53) for priority in -1000..1000
-- and seq below 2^42; seq comes from the queue's counter, so FIFO holds across calls. A job
-- handed back unfinished gets seq 0: it goes before every other job of its priority.
--
-- Every push also signals the wake LIST: one token per job made ready (at most WAKE_MAX held),
-- which idle workers wait on with BLPOP instead of polling.
local SEQ_SPAN = 4398046511104  -- 2^42
local WAKE_MAX = 64

local function ready_score(priority, seq)
  return (1000 - priority) * SEQ_SPAN + (seq % SEQ_SPAN)
end

local function wake_workers(wake_key, n)
  local tokens = {}
  for i = 1, math.min(n, WAKE_MAX) do tokens[i] = "1" end
  if redis.call("LPUSH", wake_key, unpack(tokens)) > WAKE_MAX then
    redis.call("LTRIM", wake_key, 0, WAKE_MAX - 1)
  end
end

-- Push the jobs in `ids` (already saved as waiting) in order; one INCRBY for the whole batch,
-- or none when `front` (a hand-back: seq 0). Needs bulk.lua.
local function ready_push(ready_key, seq_key, wake_key, ids, priorities, front)
  local n = #ids
  if n == 0 then return end
  local last = 0
  if not front then last = redis.call("INCRBY", seq_key, n) end
  local args = {}
  for i = 1, n do
    local seq = 0
    if not front then seq = last - n + i end
    args[#args + 1] = ready_score(priorities[i], seq)
    args[#args + 1] = ids[i]
  end
  for first, last_arg in chunk_ranges(#args, 2) do
    redis.call("ZADD", ready_key, unpack(args, first, last_arg))
  end
  wake_workers(wake_key, n)
end
