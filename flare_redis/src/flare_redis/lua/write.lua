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

local function parse(item)
  local cut = string.find(item, '\n', 1, true)
  if not cut then return nil end
  local ok, header = pcall(cjson.decode, string.sub(item, 1, cut - 1))
  -- ts must be an integer, because ZADD rejects 'nan' and would stop the
  -- script half way.
  if not ok or type(header) ~= 'table' or not string.match(text(header.ts), '^%-?%d+$') then
    return nil
  end
  if header.lv ~= 'ERROR' and header.lv ~= 'WARNING' then return nil end
  return header, string.sub(item, cut + 1)
end

local function add_to_group(header, id)
  local fingerprint = header.fp
  local group = group_key(fingerprint)
  local ts = header.ts
  local fields = redis.call('HMGET', group, 'status', 'last', 'first')
  if not fields[1] then
    redis.call('HSET', group, 'title', text(header.ti), 'level', header.lv,
      'event', text(header.ev), 'endpoint', text(header.ge), 'count', 1,
      'first', ts, 'last', ts, 'status', 'unresolved', 'regression', 0,
      'latest', id)
    place_group(fingerprint, 'unresolved', {ts, 1, ts})
    return
  end
  local status, last = fields[1], fields[2]
  local count = redis.call('HINCRBY', group, 'count', 1)
  if tonumber(ts) >= tonumber(last) then
    redis.call('HSET', group, 'last', ts, 'latest', id, 'level', header.lv)
    last = ts
  end
  if status == 'resolved' then
    -- A resolved group that occurs again is a regression.
    unplace_group(fingerprint, status)
    redis.call('HSET', group, 'status', 'unresolved', 'regression', 1)
    status = 'unresolved'
  end
  place_group(fingerprint, status, {last, count, fields[3]})
end

local function add(item, out)
  local header, body = parse(item)
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
    add_to_group(header, id)
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

if cap > 0 then
  trim_count(cap, 1000)
end
return out
