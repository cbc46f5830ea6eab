#!lua flags=no-writes
--[[
inspect: read one job, everything known about it. Read-only.

KEYS[1] clock    (STRING)  test-only clock offset, see lib/now.lua
KEYS[2] meta     (HASH)    job id -> job record
KEYS[3] payload  (HASH)    job id -> payload bytes
KEYS[4] result   (HASH)    job id -> result bytes
KEYS[5] error    (HASH)    job id -> last error text

ARGV[1] id       the job

Reply:  {STATUS.ok, now_ms, {value of each JOB_FIELDS entry, in order}, payload, result, error}
          where a missing result or error is false (nil to the client)
        {STATUS.not_found, now_ms}; {STATUS.bad_arg, name}
--]]
-- @include status
-- @include args
-- @include now
-- @include bulk
-- @include job

local clock_key, meta_key, payload_key, result_key, error_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local id = id_arg(ARGV[1])
if not id or #ARGV ~= 1 then return {STATUS.bad_arg, "id"} end

local now = now_ms(clock_key)
local job = job_load(meta_key, id)
if not job then return {STATUS.not_found, now} end
local fields = {}
for i, name in ipairs(JOB_FIELDS) do fields[i] = job[name] end
return {
  STATUS.ok, now, fields,
  redis.call("HGET", payload_key, id),
  redis.call("HGET", result_key, id),
  redis.call("HGET", error_key, id),
}
