-- Idempotent allocation for one (client, jti), atomically: check the
-- idempotency record, take `count` values of the current list's counter
-- (opening a new list when needed) and write the record, all in one step.
-- Because the record is written with the allocation, a concurrent duplicate
-- or a retry after the first caller died simply finds it: there is no
-- "in flight" state and nothing to complete afterwards.
--
-- Runs after records.lua (records, chunks). Every key touched starts with
-- the client's prefix `<prefix>{<client>}:`, so all of them hash to the
-- client's slot in Redis Cluster.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `AllocateArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- A record counts until its end by the request's clock (`now`), not only by
-- its shard's TTL, so every replica and every test agrees on when a jti may
-- be used again; the TTL only cleans up.
--
-- Returns {tag, list, first n, count, key, capacity, format, bits, cs,
-- opened} with tag 'allocated' or 'replayed' (key .. cs are nil for
-- known_list), or {'changed'}, {'open'} (a new list is needed and no id is
-- claimed yet), {'collision'} (the candidate id is taken) or {'damaged',
-- list} (a chunk of the current list's bytes is missing: fail closed).

local legacy_record_key = KEYS[1] -- the jti's record as earlier versions kept it
local current_key = KEYS[2]     -- the current-list pointer (string)
local digest = ARGV[1]          -- request digest (32 bytes)
local now = tonumber(ARGV[2])   -- unix s
local record_end = ARGV[3]      -- unix s, exclusive
local count = tonumber(ARGV[4])
local new_capacity = ARGV[5]    -- of a new list
local new_bits = ARGV[6]        -- of a new list
local format = ARGV[7]
local status_expiry = ARGV[8]   -- unix s
local client_prefix = ARGV[9]  -- `<prefix>{<client>}:`
local candidate_list = ARGV[10] -- a fresh list id, or ''
local candidate_key = ARGV[11]  -- its allocator key (32 bytes), or ''
local claimed = ARGV[12]        -- '1' when the candidate id's owner entry is claimed
local client = ARGV[13]
local new_list_bytes = tonumber(ARGV[14]) -- byte length of a new list
local new_chunk_bytes = tonumber(ARGV[15]) -- bytes per chunk of a new list
local known_list = ARGV[16]     -- the list the caller knows (its facts need not be sent), or ''
local record_field = ARGV[17]   -- the jti's record field (20 bytes, see records.lua)

local function answer(tag, list, first, count, opened)
  if list == known_list then
    return {tag, list, first, count, false, false, false, false, false, opened}
  end
  local m = redis.call('HMGET', client_prefix .. 'l:' .. list, 'key', 'cap', 'fmt', 'bits', 'cs')
  return {tag, list, first, count, m[1] or false, m[2] or false, m[3] or false, m[4] or false,
    m[5] or false, opened}
end

local rec, where = rec_lookup(client_prefix, record_field, legacy_record_key, digest, now)
if rec == 'changed' or (rec and rec.kind ~= 'I') then
  return {'changed'}
elseif rec then
  return answer('replayed', rec.list, rec.first, rec.count, 0)
end

local list = redis.call('GET', current_key)
local meta
local retire = 0
if list then
  meta = client_prefix .. 'l:' .. list
  local m = redis.call('HMGET', meta, 'n', 'cap', 'retire', 'bits', 'cs')
  if not m[1] or tonumber(m[1]) + count > tonumber(m[2]) then
    list = false
  else
    local len = math.floor((tonumber(m[2]) * tonumber(m[4]) + 7) / 8)
    local cs = tonumber(m[5]) or len
    if not chunks_present(meta, len, cs) then
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
    'cap', new_capacity, 'n', 0, 'key', candidate_key, 'created', now, 'retire', 0, 'v', 0,
    'cs', new_chunk_bytes)
  -- Each chunk is created at its full length at once: a string grown by
  -- BITFIELD writes gets Redis's greedy preallocation (up to twice the
  -- size), and an exact length lets the allocation fit its size class.
  local k, at = 0, 0
  while at < new_list_bytes do
    redis.call('SETRANGE', chunk_key(meta, k), math.min(new_chunk_bytes, new_list_bytes - at) - 1, '\0')
    k, at = k + 1, at + new_chunk_bytes
  end
  redis.call('SET', current_key, list)
  opened = 1
end

local first = redis.call('HINCRBY', meta, 'n', count) - count
if tonumber(status_expiry) > retire then
  redis.call('HSET', meta, 'retire', status_expiry)
end
rec_put(client_prefix, where,
  struct.pack(ISSUE_RECORD, 'I', record_end, string.sub(digest, 1, 8), list_bin(list), first, count),
  record_end, now)
return answer('allocated', list, first, count, opened)
