-- Remove at most ARGV[4] entries: first those whose timestamp is older than
-- the cutoff, then those whose stream id is older than it, then the oldest
-- beyond the count cap. Returns how many were removed. The caller repeats
-- while that equals the limit.
--
-- KEYS: stream.
-- ARGV: max entries, cutoff in microseconds, cutoff in milliseconds, limit.

local limit = tonumber(ARGV[4])
local removed = 0

local old = redis.call('ZRANGE', stream .. ':i:all', '-inf', '(' .. ARGV[2],
  'BYSCORE', 'LIMIT', 0, limit)
for _, id in ipairs(old) do
  remove_entry(id)
end
removed = #old

if removed < limit and tonumber(ARGV[3]) > 0 then
  local rows = redis.call('XRANGE', stream, '-', '(' .. ARGV[3] .. '-0',
    'COUNT', limit - removed)
  for _, row in ipairs(rows) do
    remove_entry(row[1])
  end
  removed = removed + #rows
end

return removed + trim_count(tonumber(ARGV[1]), limit - removed)
