-- The ready ZSET orders waiting jobs: higher priority first, first in first out within a priority.
-- score = (1000 - priority) * 2^42 + seq, exact in a double (< 2^53) for priority in -1000..1000
-- and seq below 2^42; seq comes from the queue's counter, so FIFO holds across calls. A job
-- handed back unfinished gets seq 0: it goes before every other job of its priority.
--
-- Every job made ready also signals the wake LIST: one token per job (at most WAKE_MAX held),
-- which idle workers wait on with BLPOP instead of polling (see plan_apply in lib/plan.lua).
local SEQ_SPAN = 4398046511104  -- 2^42
local WAKE_MAX = 64

local function ready_score(priority, seq)
  return (1000 - priority) * SEQ_SPAN + (seq % SEQ_SPAN)
end
