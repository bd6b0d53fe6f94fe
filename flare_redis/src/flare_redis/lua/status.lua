-- Set a group's status and move it between the group sorted sets.
-- KEYS: stream. ARGV: fingerprint, status. Returns 0 for an unknown group.

local fingerprint, status = ARGV[1], ARGV[2]
local group = group_key(fingerprint)
local fields = redis.call('HMGET', group, 'status', 'last', 'count', 'first')
if not fields[1] then return 0 end

unplace_group(fingerprint, fields[1])
redis.call('HSET', group, 'status', status)
if status == 'resolved' then
  redis.call('HSET', group, 'regression', 0)
end
place_group(fingerprint, status, {fields[2], fields[3], fields[4]})
return 1
