#!lua flags=no-writes
--[[
inspect: read one job, everything known about it. Read-only.

KEYS[1] meta        (HASH)  job id -> job record
KEYS[2] payload     (HASH)  job id -> payload bytes
KEYS[3] result      (HASH)  job id -> result bytes
KEYS[4] error       (HASH)  job id -> last error text
KEYS[5] quarantine  (ZSET)  ids of corrupt records, by when they were set aside

ARGV[1] id       the job

Reply:  {STATUS.ok, now_ms, {value of each JOB_FIELDS entry, in order}, payload, result, error,
          stub}: a missing payload, result or error is false (nil to the client); stub is 1
          when only the stub of a trimmed job is kept (lib/trim.lua), else 0
        {STATUS.unreadable, now_ms, why, record, payload, error, quarantined_ms}: a record this
          code cannot read: why is "newer" or "corrupt", record its raw bytes, error the reason
          it was quarantined, quarantined_ms when (0: not quarantined)
        {STATUS.not_found, now_ms}; {STATUS.bad_arg, name}
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job

local meta_key, payload_key, result_key, error_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local quarantine_key = KEYS[5]

local id = id_arg(ARGV[1])
if not id or #ARGV ~= 1 then return {STATUS.bad_arg, "id"} end

local now = now_ms()
local raw = redis.call("HGET", meta_key, id)
if not raw then return {STATUS.not_found, now} end
local payload = redis.call("HGET", payload_key, id)
local error_text = redis.call("HGET", error_key, id)
local job, why = job_decode(raw)
if not job then
  local quarantined = redis.call("ZSCORE", quarantine_key, id)
  return {STATUS.unreadable, now, why, raw, payload, error_text, tonumber(quarantined or "0")}
end
local fields = {}
for i, name in ipairs(JOB_FIELDS) do fields[i] = job[name] end
local stub = 0
if job.stub then stub = 1 end
return {STATUS.ok, now, fields, payload, redis.call("HGET", result_key, id), error_text, stub}
