-- Idempotent allocation for one (client, jti), atomically: check the
-- idempotency record, take `count` values of the current list's counter
-- (opening a new list when needed) and write the record, all in one step.
--
-- Every key touched starts with the client's prefix `<prefix>{<client>}:`, so
-- all of them hash to the client's slot in Redis Cluster.
--
-- KEYS[1]  idempotency record (string), KEYS[2] current-list pointer (string)
-- ARGV[1]  request digest (32 bytes) ARGV[2]  now (unix s)
-- ARGV[3]  lease until (unix s)    ARGV[4]  idempotency window (s)
-- ARGV[5]  count                   ARGV[6]  capacity of a new list
-- ARGV[7]  bits of a new list      ARGV[8]  format
-- ARGV[9]  status expiry           ARGV[10] client key prefix
-- ARGV[11] candidate list id       ARGV[12] candidate allocator key
-- ARGV[13] '1' when the candidate id's owner entry is claimed
-- ARGV[14] client id             ARGV[15] record expiry (now + window)
-- ARGV[16] byte length of a new list
-- ARGV[17] the list the caller already knows (its facts need not be sent)
--
-- The record is one string, `<digest><state>:<lease until>:<list>:<first>:
-- <count>:<expiry>` with state F (in flight) or D (done): one SET with its
-- TTL instead of a hash write and an EXPIRE, which is most of the cost of an
-- allocation. A record counts until its expiry by the request's clock
-- (`now`), not only by the key's TTL, so every replica and every test agrees
-- on when a jti may be used again; the TTL (the window) only cleans up.
--
-- Returns {tag, list, first n, count, key, capacity, format, bits, opened}
-- with tag 'allocated' or 'replayed' (key .. bits are nil for ARGV[17]), or
-- {'changed'}, {'inflight'}, {'open'} (a new list is needed and no id is
-- claimed yet) or {'collision'} (the candidate id is taken).

local function answer(tag, list, first, count, opened)
  if list == ARGV[17] then
    return {tag, list, first, count, false, false, false, false, opened}
  end
  local m = redis.call('HMGET', ARGV[10] .. 'l:' .. list, 'key', 'cap', 'fmt', 'bits')
  return {tag, list, first, count, m[1] or false, m[2] or false, m[3] or false, m[4] or false, opened}
end

local now = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if raw then
  local state, lease, rlist, rfirst, rcount, expiry =
    string.match(string.sub(raw, 33), '^(%u):(%d+):(%x+):(%d+):(%d+):(%d+)$')
  if expiry and now < tonumber(expiry) then
    if string.sub(raw, 1, 32) ~= ARGV[1] then
      return {'changed'}
    end
    if state ~= 'D' then
      if tonumber(lease) > now then
        return {'inflight'}
      end
      -- The first request's lease ran out: its allocation stands, and this
      -- retry answers with it. Never allocate a second time.
      redis.call('SET', KEYS[1], string.sub(raw, 1, 32) .. 'D' .. string.sub(raw, 34), 'KEEPTTL')
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
  local m = redis.call('HMGET', meta, 'n', 'cap', 'retire')
  if not m[1] or tonumber(m[1]) + count > tonumber(m[2]) then
    list = false
  else
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
  redis.call('SETRANGE', meta .. ':b', tonumber(ARGV[16]) - 1, '\0')
  redis.call('SET', KEYS[2], list)
  opened = 1
end

local first = redis.call('HINCRBY', meta, 'n', count) - count
if tonumber(ARGV[9]) > retire then
  redis.call('HSET', meta, 'retire', ARGV[9])
end
redis.call('SET', KEYS[1],
  ARGV[1] .. 'F:' .. ARGV[3] .. ':' .. list .. ':' .. first .. ':' .. count .. ':' .. ARGV[15],
  'EX', ARGV[4])
return answer('allocated', list, first, count, opened)
