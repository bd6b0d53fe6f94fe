-- Walk one index newest first and return the entries that are also in every
-- filter index and whose search text contains the needle.
--
-- KEYS: stream, index to walk, filter indexes...
-- ARGV: since in microseconds or '', until in microseconds (exclusive) or '',
--       cursor id or '', cursor score, items wanted, max entries to scan,
--       lowercase needle or ''.
-- Returns state, last scanned id, its score, then id, score, entry JSON for
-- each match ('' when the stream no longer has it). state is 'full' when the
-- wanted count was found, 'budget' when the scan stopped at its maximum
-- first, 'end' when the index has no more candidates.

local walk = KEYS[2]
local since = tonumber(ARGV[1])
local want, budget, needle = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local texts = stream .. ':s'

local start = 0
if ARGV[2] ~= '' then
  start = redis.call('ZCOUNT', walk, ARGV[2], '+inf')
end
if ARGV[3] ~= '' then
  local rank = redis.call('ZREVRANK', walk, ARGV[3])
  local after
  if rank then
    after = rank + 1
  else
    -- The cursor's entry was removed: resume below its score. Unseen
    -- entries with exactly that timestamp are skipped.
    after = redis.call('ZCOUNT', walk, ARGV[4], '+inf')
  end
  if after > start then start = after end
end

local function body_of(id)
  local rows = redis.call('XRANGE', stream, id, id)
  if #rows == 0 then return '' end
  local fields = rows[1][2]
  for position = 1, #fields, 2 do
    if fields[position] == 'e' then return fields[position + 1] end
  end
  return ''
end

local function matches(id)
  for position = 3, #KEYS do
    if not redis.call('ZSCORE', KEYS[position], id) then return false end
  end
  if needle == '' then return true end
  local haystack = redis.call('HGET', texts, id)
  return haystack and string.find(haystack, needle, 1, true) ~= nil
end

local found = {}
local scanned, last_id, last_score = 0, '', ''
local state = nil
while not state do
  local rows = redis.call('ZRANGE', walk, start, start + 499, 'REV', 'WITHSCORES')
  if #rows == 0 then state = 'end' end
  for position = 1, #rows, 2 do
    local id, score = rows[position], rows[position + 1]
    if since and tonumber(score) < since then
      state = 'end'
      break
    end
    scanned = scanned + 1
    last_id, last_score = id, score
    if matches(id) then
      table.insert(found, id)
      table.insert(found, score)
      table.insert(found, body_of(id))
      if #found >= want * 3 then
        state = 'full'
        break
      end
    end
    if scanned >= budget then
      state = 'budget'
      break
    end
  end
  if not state and #rows < 1000 then state = 'end' end
  start = start + 500
end

local reply = {state, last_id, last_score}
for _, value in ipairs(found) do
  table.insert(reply, value)
end
return reply
