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
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `AllocateArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
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
-- with tag 'allocated' or 'replayed' (key .. bits are nil for known_list), or
-- {'changed'}, {'open'} (a new list is needed and no id is claimed yet),
-- {'collision'} (the candidate id is taken) or {'damaged', list} (the current
-- list's bytes are missing or of the wrong length: fail closed).

local record_key = KEYS[1]      -- the idempotency record (string)
local current_key = KEYS[2]     -- the current-list pointer (string)
local digest = ARGV[1]          -- request digest (32 bytes)
local now = ARGV[2]             -- unix s
local record_ttl = ARGV[3]      -- s
local record_expiry = ARGV[4]   -- unix s, exclusive
local count = tonumber(ARGV[5])
local new_capacity = ARGV[6]    -- of a new list
local new_bits = ARGV[7]        -- of a new list
local format = ARGV[8]
local status_expiry = ARGV[9]   -- unix s
local client_prefix = ARGV[10]  -- `<prefix>{<client>}:`
local candidate_list = ARGV[11] -- a fresh list id, or ''
local candidate_key = ARGV[12]  -- its allocator key (32 bytes), or ''
local claimed = ARGV[13]        -- '1' when the candidate id's owner entry is claimed
local client = ARGV[14]
local new_list_bytes = ARGV[15] -- byte length of a new list
local known_list = ARGV[16]     -- the list the caller knows (its facts need not be sent), or ''

local function answer(tag, list, first, count, opened)
  if list == known_list then
    return {tag, list, first, count, false, false, false, false, opened}
  end
  local m = redis.call('HMGET', client_prefix .. 'l:' .. list, 'key', 'cap', 'fmt', 'bits')
  return {tag, list, first, count, m[1] or false, m[2] or false, m[3] or false, m[4] or false, opened}
end

local raw = redis.call('GET', record_key)
if raw then
  local expiry = tonumber(string.match(raw, ':(%d+)$'))
  if expiry and tonumber(now) < expiry then
    if string.sub(raw, 1, 32) ~= digest then
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

local list = redis.call('GET', current_key)
local meta
local retire = 0
if list then
  meta = client_prefix .. 'l:' .. list
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
  if claimed ~= '1' then
    return {'open'}
  end
  list = candidate_list
  meta = client_prefix .. 'l:' .. list
  if redis.call('EXISTS', meta) == 1 then
    return {'collision'}
  end
  redis.call('HSET', meta, 'owner', client, 'fmt', format, 'bits', new_bits,
    'cap', new_capacity, 'n', 0, 'key', candidate_key, 'created', now, 'retire', 0, 'v', 0)
  -- The bytes are created at their full length at once: a string grown by
  -- BITFIELD writes gets Redis's greedy preallocation (up to twice the size).
  redis.call('SETRANGE', meta .. ':b', tonumber(new_list_bytes) - 1, '\0')
  redis.call('SET', current_key, list)
  opened = 1
end

local first = redis.call('HINCRBY', meta, 'n', count) - count
if tonumber(status_expiry) > retire then
  redis.call('HSET', meta, 'retire', status_expiry)
end
redis.call('SET', record_key,
  digest .. 'I:' .. list .. ':' .. first .. ':' .. count .. ':' .. record_expiry,
  'EX', record_ttl)
return answer('allocated', list, first, count, opened)
