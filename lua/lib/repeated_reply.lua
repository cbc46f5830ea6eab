-- repeated_reply: the reply of a repeated requeue or purge, from its record ("id status,..."):
-- {STATUS.duplicate, count of ok, id_1, status_1, ...}, as the first call answered.
local function repeated_reply(record)
  local reply = {STATUS.duplicate, 0}
  for id, status in string.gmatch(record, "([^ ,]+) ([^ ,]+)") do
    reply[#reply + 1] = id
    reply[#reply + 1] = status
    if status == STATUS.ok then reply[2] = reply[2] + 1 end
  end
  return reply
end
