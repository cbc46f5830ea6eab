-- Request records: what a claim, requeue or purge did, by its client-made request id, so that a
-- repeat of the call (a retry after a lost reply) answers as the first one did and changes
-- nothing. Each is kept for the repeat window (Retention.repeat_window_ms, about a minute, longer
-- than any retry chain of redis-py's), whatever the leases' lengths, then forgotten.
local function remember_request(plan, request_id, value, window_ms)
  plan_hash(plan, plan.keys.requests, request_id, value)
  plan_zset(plan, plan.keys.request_exp, request_id, plan.now + window_ms)
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
