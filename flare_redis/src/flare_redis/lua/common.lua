-- Helpers shared by every Flare script. Each script's own body follows them.
-- KEYS[1] is always the stream. Every other key Flare uses is the stream's
-- name plus a suffix, so all of them carry the stream's hash tag and live in
-- its cluster slot. Scores are microseconds since the epoch, passed and
-- stored as decimal strings: Lua numbers print with 14 digits only.

local stream = KEYS[1]
local SORTS = {'last_seen', 'count', 'first_seen'}
local STATUSES = {'unresolved', 'resolved', 'ignored'}

local function index_keys(meta)
  -- meta is {level, event, http status, endpoint, fingerprint}, '' for none.
  local keys = {
    stream .. ':i:all',
    stream .. ':i:level:' .. meta[1],
    stream .. ':i:event:' .. meta[2],
  }
  if meta[3] ~= '' then table.insert(keys, stream .. ':i:status:' .. meta[3]) end
  if meta[4] ~= '' then table.insert(keys, stream .. ':i:endpoint:' .. meta[4]) end
  if meta[5] ~= '' then table.insert(keys, stream .. ':i:fp:' .. meta[5]) end
  return keys
end

local function group_key(fingerprint)
  return stream .. ':g:' .. fingerprint
end

local function sort_key(sort, set)
  return stream .. ':gs:' .. sort .. ':' .. set
end

-- Put a group into the sorted sets of its status, and of 'visible' unless it
-- is ignored. scores is {last_seen, count, first_seen}.
local function place_group(fingerprint, status, scores)
  for position, sort in ipairs(SORTS) do
    redis.call('ZADD', sort_key(sort, status), scores[position], fingerprint)
    if status ~= 'ignored' then
      redis.call('ZADD', sort_key(sort, 'visible'), scores[position], fingerprint)
    end
  end
end

local function unplace_group(fingerprint, status)
  for _, sort in ipairs(SORTS) do
    redis.call('ZREM', sort_key(sort, status), fingerprint)
    redis.call('ZREM', sort_key(sort, 'visible'), fingerprint)
  end
end

-- Delete one stream entry with its index members, its search text and its
-- share of its group. A group whose count reaches zero is deleted.
local function remove_entry(id)
  local raw = redis.call('HGET', stream .. ':m', id)
  redis.call('XDEL', stream, id)
  redis.call('HDEL', stream .. ':m', id)
  redis.call('HDEL', stream .. ':s', id)
  if not raw then
    redis.call('ZREM', stream .. ':i:all', id)
    return
  end
  local meta = cjson.decode(raw)
  for _, key in ipairs(index_keys(meta)) do
    redis.call('ZREM', key, id)
  end
  local fingerprint = meta[5]
  if fingerprint == '' then return end
  local group = group_key(fingerprint)
  local fields = redis.call('HMGET', group, 'status', 'last', 'first')
  if not fields[1] then return end
  local count = redis.call('HINCRBY', group, 'count', -1)
  if count > 0 then
    place_group(fingerprint, fields[1], {fields[2], count, fields[3]})
    return
  end
  redis.call('DEL', group)
  for _, status in ipairs(STATUSES) do
    unplace_group(fingerprint, status)
  end
end

-- Remove at most limit of the oldest entries, by stream id, beyond max_entries.
local function trim_count(max_entries, limit)
  local excess = redis.call('XLEN', stream) - max_entries
  if excess <= 0 or limit <= 0 then return 0 end
  local rows = redis.call('XRANGE', stream, '-', '+', 'COUNT', math.min(excess, limit))
  for _, row in ipairs(rows) do
    remove_entry(row[1])
  end
  return #rows
end

