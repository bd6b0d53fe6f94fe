-- Count the members of each sorted set in each score range.
-- KEYS: stream, then the sorted sets.
-- ARGV: low and high bound of each range, as ZCOUNT takes them.
-- Returns the counts key by key, and within a key range by range.

local out = {}
for position = 2, #KEYS do
  for bound = 1, #ARGV, 2 do
    table.insert(out, redis.call('ZCOUNT', KEYS[position], ARGV[bound], ARGV[bound + 1]))
  end
end
return out
