-- chunk_ranges: split a long flat list of command arguments (say, ZADD's score/member pairs)
-- into ranges of at most 1000 for unpack(), which spreads them on the bounded Lua stack:
--   for first, last in chunk_ranges(#args, 2) do
--     redis.call("ZADD", set_key, unpack(args, first, last))
--   end
-- `step` keeps groups together (2 for pairs, 1 for single members).
local function chunk_ranges(n, step)
  local size = 1000 - 1000 % step
  local first = 1 - size
  return function()
    first = first + size
    if first > n then return nil end
    return first, math.min(first + size - 1, n)
  end
end
