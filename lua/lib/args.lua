-- Argument validation. Every check returns nil on failure; callers answer STATUS.bad_arg with a
-- fixed name of the argument, never the caller's text. Only plain decimal integers are accepted:
-- "nan", "inf", "1e309", "0x10", "" and " 1" are all refused.
local function int_arg(value, low, high)
  if type(value) ~= "string" or #value > 20 or not string.find(value, "^%-?%d+$") then
    return nil
  end
  local n = tonumber(value)
  if n == nil or n < low or n > high then
    return nil
  end
  return n
end

-- Ids (job, worker, claim): 1 to 128 characters from letters, digits and _ . : @ / + = -
-- The set excludes the separators used in stored records (space, comma, pipe).
local function id_arg(value)
  if type(value) ~= "string" or #value < 1 or #value > 128 then
    return nil
  end
  if string.find(value, "[^%w_%.:@/%+=%-]") then
    return nil
  end
  return value
end

-- Bounds shared by every script.
local MAX_MS = 100 * 365 * 24 * 3600 * 1000   -- a century: the largest duration or timestamp
local MAX_BATCH = 1000                        -- the largest number of items in one call
local MAX_CALL_BYTES = 1024 * 1024 * 1024      -- the largest byte budget a call may be given
