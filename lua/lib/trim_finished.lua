-- trim_finished: delete up to `limit` finished jobs whose retention has run out, then up to
-- `limit` more while the set holds over `max_count`. Everything about a trimmed job goes: its
-- record, payload, result and error. Bounded by 2 * limit deletions. Needs delete_jobs.lua.
local function trim_finished(finished_key, meta_key, payload_key, result_key, error_key,
                             now, max_count, limit)
  if limit <= 0 then return 0 end
  local victims = redis.call("ZRANGEBYSCORE", finished_key, "-inf", now, "LIMIT", 0, limit)
  local excess = redis.call("ZCARD", finished_key) - #victims - max_count
  if excess > 0 then
    local extra = redis.call("ZRANGE", finished_key, #victims, #victims + math.min(excess, limit) - 1)
    for _, id in ipairs(extra) do victims[#victims + 1] = id end
  end
  if #victims == 0 then return 0 end
  redis.call("ZREM", finished_key, unpack(victims))
  delete_jobs(meta_key, payload_key, result_key, error_key, victims)
  return #victims
end
