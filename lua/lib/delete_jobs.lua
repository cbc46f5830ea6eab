-- delete_jobs: remove every trace of the jobs in `ids` from the per-job hashes (record, payload,
-- result, error). The caller removes them from their state's ZSET. At most MAX_BATCH * 2 ids.
local function delete_jobs(meta_key, payload_key, result_key, error_key, ids)
  if #ids == 0 then return end
  redis.call("HDEL", meta_key, unpack(ids))
  redis.call("HDEL", payload_key, unpack(ids))
  redis.call("HDEL", result_key, unpack(ids))
  redis.call("HDEL", error_key, unpack(ids))
end
