-- forget_claims: drop up to `limit` claim records whose leases have all run out; a claim id is
-- remembered (for repeated calls) until the last deadline it handed out. Bounded by `limit`.
local function forget_claims(claims_key, claim_exp_key, now, limit)
  local stale = redis.call("ZRANGEBYSCORE", claim_exp_key, "-inf", now, "LIMIT", 0, limit)
  if #stale > 0 then
    redis.call("ZREM", claim_exp_key, unpack(stale))
    redis.call("HDEL", claims_key, unpack(stale))
  end
  return #stale
end
