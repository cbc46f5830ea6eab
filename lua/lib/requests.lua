-- Request records: what a claim, requeue or purge did, by its client-made request id, so that a
-- repeat of the call (a retry after a lost reply) answers as the first one did and changes
-- nothing. Each is kept for the repeat window (Retention.repeat_window_ms, about a minute, longer
-- than any retry chain of redis-py's), whatever the leases' lengths, then forgotten.
-- A record is "<kind>:<what it did>", kind one of "claim", "requeue", "purge", so that an id
-- reused for a call of another kind is refused rather than misread.
local function remember_request(plan, request_id, kind, value, window_ms)
  plan_hash(plan, plan.keys.requests, request_id, kind .. ":" .. value)
  plan_zset(plan, plan.keys.request_exp, request_id, plan.now + window_ms)
end

-- recall_request: what the call of `kind` with `request_id` did, if one was made within the
-- window; nil when none was; false when the id was used by a call of another kind.
local function recall_request(requests_key, request_id, kind)
  local previous = redis.call("HGET", requests_key, request_id)
  if not previous then return nil end
  local found, body = string.match(previous, "^(%a+):(.*)$")
  if found ~= kind then return false end
  return body
end

-- forget_requests: drop up to `limit` request records whose window has passed.
local function forget_requests(plan, request_exp_key, limit)
  local stale = redis.call("ZRANGEBYSCORE", request_exp_key, "-inf", plan.now, "LIMIT", 0, limit)
  for _, request_id in ipairs(stale) do
    plan_zset(plan, plan.keys.request_exp, request_id, nil)
    plan_hash(plan, plan.keys.requests, request_id, nil)
  end
  return #stale
end

