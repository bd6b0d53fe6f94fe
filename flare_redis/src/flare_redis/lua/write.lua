-- Push ARGV[4..] onto the queue, then move the queue's oldest items into the
-- stream and the indexes. The script runs atomically, so an item leaves the
-- queue only together with its XADD.
--
-- KEYS: stream, queue.
-- ARGV: max backlog items to drain besides the new ones, hard cap on XLEN
--       (0 for none), token TTL in seconds, queue items.
-- Returns a flat list of token, stream id pairs for the items written.
--
-- A queue item is a JSON header, a newline and the entry's JSON. The header
-- contains the index values (every value a string): t token, ts timestamp in
-- microseconds, lv level, ev event, st HTTP status, ep endpoint,
-- fp fingerprint, ti group title, ge group endpoint, s search text.

local queue = KEYS[2]
local backlog_limit = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local token_ttl = tonumber(ARGV[3])

local function text(value)
  if type(value) == 'string' then return value end
  return ''
end

-- Microseconds since the epoch of one second after 0001-01-01 00:00 and one
-- second before 10000-01-01. The margin keeps a value that rounds to a
-- nearby double, as Lua numbers do here, inside the range.
local FIRST_TS = -62135596799000000
local LAST_TS = 253402300799000000

local function parse(item)
  local cut = string.find(item, '\n', 1, true)
  if not cut then return nil end
  local ok, header = pcall(cjson.decode, string.sub(item, 1, cut - 1))
  -- ts must be an integer, because ZADD rejects 'nan' and overflowing
  -- values and an error would stop the script half way. It must also lie in
  -- the years 1 to 9999, which are all that readers can turn into a date.
  if not ok or type(header) ~= 'table' or not string.match(text(header.ts), '^%-?%d+$') then
    return nil
  end
  local ts = tonumber(header.ts)
  if ts < FIRST_TS or ts > LAST_TS then return nil end
  if header.lv ~= 'ERROR' and header.lv ~= 'WARNING' then return nil end
  return header, string.sub(item, cut + 1), ts
end

-- Group changes of this call by fingerprint, and the fingerprints in the
-- order of their first entry. A batch often contains several entries of
-- one group, and each group then costs one HMGET and one HSET instead of a
-- round of calls per entry.
local changes = {}
local changed = {}

-- Record one entry of a group, with ts as the number of header.ts. The
-- group's latest entry is the one with the greatest ts, and of equal ones the later
-- written, as if entries were applied one by one.
local function add_to_group(fingerprint, header, id, ts)
  local change = changes[fingerprint]
  if not change then
    change = {count = 0, header = header, last = header.ts, number = ts,
      latest = id, level = header.lv}
    changes[fingerprint] = change
    changed[#changed + 1] = fingerprint
  elseif ts >= change.number then
    change.last, change.number, change.latest, change.level = header.ts, ts, id, header.lv
  end
  change.count = change.count + 1
end

-- Scores and members for the group sorted sets, by sort and then by status
-- or 'visible', so that each set gets one ZADD for all groups.
local scores = {}
for _, sort in ipairs(SORTS) do scores[sort] = {} end

-- Queue a group's score of one sort for the set of its status, and for
-- 'visible' unless it is ignored, as place_group does.
local function queue_place(fingerprint, status, sort, score)
  local sets = scores[sort]
  local list = sets[status]
  if not list then
    list = {}
    sets[status] = list
  end
  list[#list + 1] = score
  list[#list + 1] = fingerprint
  if status == 'ignored' then return end
  list = sets.visible
  if not list then
    list = {}
    sets.visible = list
  end
  list[#list + 1] = score
  list[#list + 1] = fingerprint
end

local function apply_change(fingerprint, change)
  local group = group_key(fingerprint)
  local fields = redis.call('HMGET', group, 'status', 'last', 'count')
  -- The count goes to Redis as a string formatted once, because Redis
  -- converts every Lua number argument itself and the count goes into the
  -- hash and two sorted sets.
  if not fields[1] then
    -- The first entry gives the header fields and first, and the latest
    -- entry gives last, latest and level.
    local header = change.header
    local count = string.format('%d', change.count)
    redis.call('HSET', group, 'title', text(header.ti), 'level', change.level,
      'event', text(header.ev), 'endpoint', text(header.ge), 'count', count,
      'first', header.ts, 'last', change.last, 'status', 'unresolved', 'regression', 0,
      'latest', change.latest)
    queue_place(fingerprint, 'unresolved', 'last_seen', change.last)
    queue_place(fingerprint, 'unresolved', 'count', count)
    queue_place(fingerprint, 'unresolved', 'first_seen', header.ts)
    return
  end
  local status, last = fields[1], fields[2]
  local count = string.format('%d', (tonumber(fields[3]) or 0) + change.count)
  local previous = tonumber(last)
  if change.number >= previous then
    last = change.last
    redis.call('HSET', group, 'count', count, 'last', last, 'latest', change.latest,
      'level', change.level)
  else
    redis.call('HSET', group, 'count', count)
  end
  if status == 'resolved' then
    -- A resolved group that occurs again is a regression. The ZREMs run now,
    -- before the queued ZADDs put it back into 'visible'.
    local first = redis.call('HGET', group, 'first')
    unplace_group(fingerprint, status)
    redis.call('HSET', group, 'status', 'unresolved', 'regression', 1)
    queue_place(fingerprint, 'unresolved', 'last_seen', last)
    queue_place(fingerprint, 'unresolved', 'count', count)
    queue_place(fingerprint, 'unresolved', 'first_seen', first)
    return
  end
  -- The group is already in the sets of its status with its first_seen,
  -- which a write never changes, and with its old last_seen.
  queue_place(fingerprint, status, 'count', count)
  if change.number > previous then
    queue_place(fingerprint, status, 'last_seen', last)
  end
end

-- Members per ZADD. unpack in Redis 7.0 scripts fails with "too many
-- results to unpack" from 8000 values on.
local ZADD_CHUNK = 500

local function apply_groups()
  for _, fingerprint in ipairs(changed) do
    apply_change(fingerprint, changes[fingerprint])
  end
  for _, sort in ipairs(SORTS) do
    for _, set in ipairs({'unresolved', 'resolved', 'ignored', 'visible'}) do
      local list = scores[sort][set]
      for start = 1, list and #list or 0, 2 * ZADD_CHUNK do
        local stop = math.min(start + 2 * ZADD_CHUNK - 1, #list)
        redis.call('ZADD', sort_key(sort, set), unpack(list, start, stop))
      end
    end
  end
end

local function add(item, out)
  local header, body, ts = parse(item)
  if not header then
    redis.call('LPUSH', stream .. ':invalid', item)
    redis.call('LTRIM', stream .. ':invalid', 0, 999)
    return
  end
  local token = text(header.t)
  local token_key = stream .. ':tok:' .. token
  if token ~= '' then
    -- A retried batch (its reply was lost) must not be written twice.
    local seen = redis.call('GET', token_key)
    if seen then
      table.insert(out, token)
      table.insert(out, seen)
      return
    end
  end

  local id = redis.call('XADD', stream, '*', 'e', body)
  local meta = {header.lv, text(header.ev), text(header.st), text(header.ep), text(header.fp)}
  for _, key in ipairs(index_keys(meta)) do
    redis.call('ZADD', key, header.ts, id)
  end
  redis.call('HSET', stream .. ':m', id, cjson.encode(meta))
  if text(header.s) ~= '' then
    redis.call('HSET', stream .. ':s', id, header.s)
  end
  if meta[5] ~= '' then
    add_to_group(meta[5], header, id, ts)
  end
  if token ~= '' then
    redis.call('SET', token_key, id, 'EX', token_ttl)
    table.insert(out, token)
    table.insert(out, id)
  end
end

for position = 4, #ARGV do
  redis.call('LPUSH', queue, ARGV[position])
end

local out = {}
local todo = math.min(redis.call('LLEN', queue), backlog_limit + #ARGV - 3)
while todo > 0 do
  local items = redis.call('RPOP', queue, math.min(todo, 100))
  if not items then break end
  for _, item in ipairs(items) do
    add(item, out)
  end
  todo = todo - #items
end
-- Before trimming, because removing an entry reads and updates its group.
apply_groups()

if cap > 0 then
  trim_count(cap, 1000)
end
return out
