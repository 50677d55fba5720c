-- Idempotent allocation for one (client, jti), atomically: check the
-- idempotency record, take `count` values of the current list's counter
-- (opening a new list when needed) and write the record, all in one step.
-- Because the record is written with the allocation, a concurrent duplicate
-- or a retry after the first caller died simply finds it: there is no
-- "in flight" state and nothing to complete afterwards.
--
-- Every key touched starts with the client's prefix `<prefix>{<client>}:`, so
-- all of them hash to the client's slot in Redis Cluster.
--
-- KEYS[1]  idempotency record (string), KEYS[2] current-list pointer (string)
-- ARGV[1]  request digest (32 bytes) ARGV[2]  now (unix s)
-- ARGV[3]  record TTL (s)            ARGV[4]  record expiry (unix s, exclusive)
-- ARGV[5]  count                     ARGV[6]  capacity of a new list
-- ARGV[7]  bits of a new list        ARGV[8]  format
-- ARGV[9]  status expiry             ARGV[10] client key prefix
-- ARGV[11] candidate list id         ARGV[12] candidate allocator key
-- ARGV[13] '1' when the candidate id's owner entry is claimed
-- ARGV[14] client id                 ARGV[15] byte length of a new list
-- ARGV[16] the list the caller already knows (its facts need not be sent)
--
-- Records (one string each, shared with set_status.lua, so a jti used for
-- one kind of request is "changed" for the other):
--   issue:  <digest>I:<list>:<first n>:<count>:<expiry>
--   change: <digest>C:<d|a>:<at>:<expiry>
-- Records written by earlier versions (`<digest>D:<lease>:<list>:<first>:
-- <count>:<expiry>`, state D or F) are still answered from. A record counts
-- until its expiry by the request's clock (`now`), not only by the key's TTL,
-- so every replica and every test agrees on when a jti may be used again; the
-- TTL only cleans up.
--
-- Returns {tag, list, first n, count, key, capacity, format, bits, opened}
-- with tag 'allocated' or 'replayed' (key .. bits are nil for ARGV[16]), or
-- {'changed'}, {'open'} (a new list is needed and no id is claimed yet),
-- {'collision'} (the candidate id is taken) or {'damaged', list} (the current
-- list's bytes are missing or of the wrong length: fail closed).

local function answer(tag, list, first, count, opened)
  if list == ARGV[16] then
    return {tag, list, first, count, false, false, false, false, opened}
  end
  local m = redis.call('HMGET', ARGV[10] .. 'l:' .. list, 'key', 'cap', 'fmt', 'bits')
  return {tag, list, first, count, m[1] or false, m[2] or false, m[3] or false, m[4] or false, opened}
end

local now = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if raw then
  local expiry = tonumber(string.match(raw, ':(%d+)$'))
  if expiry and now < expiry then
    if string.sub(raw, 1, 32) ~= ARGV[1] then
      return {'changed'}
    end
    local rest = string.sub(raw, 33)
    local rlist, rfirst, rcount = string.match(rest, '^I:(%x+):(%d+):(%d+):%d+$')
    if not rlist then
      rlist, rfirst, rcount = string.match(rest, '^[DF]:%d+:(%x+):(%d+):(%d+):%d+$')
    end
    if not rlist then
      return {'changed'}
    end
    return answer('replayed', rlist, tonumber(rfirst), tonumber(rcount), 0)
  end
end

local count = tonumber(ARGV[5])
local list = redis.call('GET', KEYS[2])
local meta
local retire = 0
if list then
  meta = ARGV[10] .. 'l:' .. list
  local m = redis.call('HMGET', meta, 'n', 'cap', 'retire', 'bits')
  if not m[1] or tonumber(m[1]) + count > tonumber(m[2]) then
    list = false
  else
    local want = math.floor((tonumber(m[2]) * tonumber(m[4]) + 7) / 8)
    if redis.call('STRLEN', meta .. ':b') ~= want then
      return {'damaged', list}
    end
    retire = tonumber(m[3]) or 0
  end
end

local opened = 0
if not list then
  if ARGV[13] ~= '1' then
    return {'open'}
  end
  list = ARGV[11]
  meta = ARGV[10] .. 'l:' .. list
  if redis.call('EXISTS', meta) == 1 then
    return {'collision'}
  end
  redis.call('HSET', meta, 'owner', ARGV[14], 'fmt', ARGV[8], 'bits', ARGV[7],
    'cap', ARGV[6], 'n', 0, 'key', ARGV[12], 'created', ARGV[2], 'retire', 0, 'v', 0)
  -- The bytes are created at their full length at once: a string grown by
  -- BITFIELD writes gets Redis's greedy preallocation (up to twice the size).
  redis.call('SETRANGE', meta .. ':b', tonumber(ARGV[15]) - 1, '\0')
  redis.call('SET', KEYS[2], list)
  opened = 1
end

local first = redis.call('HINCRBY', meta, 'n', count) - count
if tonumber(ARGV[9]) > retire then
  redis.call('HSET', meta, 'retire', ARGV[9])
end
redis.call('SET', KEYS[1],
  ARGV[1] .. 'I:' .. list .. ':' .. first .. ':' .. count .. ':' .. ARGV[4],
  'EX', ARGV[3])
return answer('allocated', list, first, count, opened)
