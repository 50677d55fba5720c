-- Idempotent allocations for a batch of requests of one (client, format),
-- atomically: for each request in turn, check its idempotency record, take
-- `count` values of the current list's counter (opening a new list when
-- needed) and write the record, all in one step. Because the record is
-- written with the allocation, a concurrent duplicate or a retry after the
-- first caller died simply finds it: there is no "in flight" state and
-- nothing to complete afterwards. A batch answers each request as it would
-- have been answered alone, in order (the same jti twice is a replay the
-- second time).
--
-- Why batches: a script call costs Redis a few microseconds before it does
-- anything (arguments, the prelude's definitions, the reply), and the
-- client's table state, current list and its metadata are read once per
-- batch instead of once per request.
--
-- Runs after records.lua (records, chunks). Every key touched starts with
-- the client's prefix `<prefix>{<client>}:`, so all of them hash to the
-- client's slot in Redis Cluster.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `AllocateArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together). Each request is ITEM_ARGS values of
-- `items`, in the order of the `item_*` names below.
--
-- A record counts until its end by the request's clock (`now`), not only by
-- its shard's TTL, so every replica and every test agrees on when a jti may
-- be used again; the TTL only cleans up.
--
-- Returns {answers, opened, facts}: one answer per request, {'allocated' |
-- 'replayed', list, first n, count}, {'changed'}, {'damaged', list} (a
-- chunk of the current list's bytes is missing: fail closed), {'open'} (a
-- new list is needed and no id is claimed yet, or the claimed one is used
-- already), {'collision'} (the candidate id is taken) or {'pending'} (not
-- looked at: after an open or a collision); opened 1 when the candidate list
-- was opened; facts {list, key, capacity, format, bits, cs, ...} of every
-- list answered but known_list.

local current_key = KEYS[1]     -- the current-list pointer (string)
local legacy_keys = {unpack(KEYS, 2)} -- each request's record as earlier versions kept it
local new_capacity = ARGV[1]    -- of a new list
local new_bits = ARGV[2]        -- of a new list
local format = ARGV[3]
local client_prefix = ARGV[4]   -- `<prefix>{<client>}:`
local candidate_list = ARGV[5]  -- a fresh list id, or ''
local candidate_key = ARGV[6]   -- its allocator key (32 bytes), or ''
local claimed = ARGV[7]         -- '1' when the candidate id's owner entry is claimed
local client = ARGV[8]
local new_list_bytes = tonumber(ARGV[9]) -- byte length of a new list
local new_chunk_bytes = tonumber(ARGV[10]) -- bytes per chunk of a new list
local known_list = ARGV[11]     -- the list the caller knows (its facts need not be sent), or ''
local items = {unpack(ARGV, 12)} -- the requests, ITEM_ARGS values each:
local ITEM_ARGS = 6
-- item_field: the jti's record field (20 bytes, see records.lua)
-- item_digest: request digest (32 bytes)
-- item_now: the request's clock (unix s)
-- item_end: until when its record counts (unix s, exclusive)
-- item_count: how many indexes
-- item_expiry: its statusExpiry (unix s)

local state = rec_state(client_prefix)

-- The current list, read once: its id, metadata key, counter, capacity,
-- latest status expiry, and whether a chunk of it is missing.
local list = redis.call('GET', current_key)
-- retire_text is retire as given: written back as is, since a number
-- beyond 2^53 would come back from Lua in another notation.
local meta, n, cap, retire, retire_text, damaged
if list then
  meta = client_prefix .. 'l:' .. list
  local m = redis.call('HMGET', meta, 'n', 'cap', 'retire', 'bits', 'cs')
  if m[1] then
    n, cap, retire, retire_text = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]) or 0, m[3] or '0'
    local len = math.floor((cap * tonumber(m[4]) + 7) / 8)
    damaged = not chunks_present(meta, len, tonumber(m[5]) or len)
  else
    list = false
  end
end
-- The counter and retire-after as the batch moved them, written back once.
local moved = false
local function write_back()
  if moved then
    redis.call('HSET', meta, 'n', n, 'retire', retire_text)
    moved = false
  end
end

local opened = 0
local answers = {}
local listed = {}
local done = 0
for i = 1, #items / ITEM_ARGS do
  local at = (i - 1) * ITEM_ARGS
  local field, digest = items[at + 1], items[at + 2]
  local now, record_end = tonumber(items[at + 3]), items[at + 4]
  local count, status_expiry = tonumber(items[at + 5]), tonumber(items[at + 6])
  local rec, where = rec_lookup(client_prefix, state, field, legacy_keys[i], digest, now)
  if rec == 'changed' or (rec and rec.kind ~= 'I') then
    answers[i] = {'changed'}
  elseif rec then
    answers[i] = {'replayed', rec.list, rec.first, rec.count}
    listed[rec.list] = true
  elseif list and damaged and n + count <= cap then
    answers[i] = {'damaged', list}
  else
    if not list or n + count > cap then
      if claimed ~= '1' or opened == 1 then
        answers[i] = {'open'}
        break
      end
      local new_meta = client_prefix .. 'l:' .. candidate_list
      if redis.call('EXISTS', new_meta) == 1 then
        answers[i] = {'collision'}
        break
      end
      write_back()
      list, meta = candidate_list, new_meta
      n, cap, retire, retire_text, damaged = 0, tonumber(new_capacity), 0, '0', false
      redis.call('HSET', meta, 'owner', client, 'fmt', format, 'bits', new_bits,
        'cap', new_capacity, 'n', 0, 'key', candidate_key, 'created', now, 'retire', 0, 'v', 0,
        'cs', new_chunk_bytes)
      -- Each chunk is created at its full length at once: a string grown by
      -- BITFIELD writes gets Redis's greedy preallocation (up to twice the
      -- size), and an exact length lets the allocation fit its size class.
      local k, off = 0, 0
      while off < new_list_bytes do
        redis.call('SETRANGE', chunk_key(meta, k), math.min(new_chunk_bytes, new_list_bytes - off) - 1, '\0')
        k, off = k + 1, off + new_chunk_bytes
      end
      redis.call('SET', current_key, list)
      opened = 1
    end
    local first = n
    n, moved = n + count, true
    if status_expiry > retire then
      retire, retire_text = status_expiry, items[at + 6]
    end
    rec_put(client_prefix, state, where,
      struct.pack(ISSUE_RECORD, 'I', record_end, string.sub(digest, 1, 8), list_bin(list), first, count),
      record_end, now)
    answers[i] = {'allocated', list, first, count}
    listed[list] = true
  end
  done = i
end
write_back()
for i = done + 2, #items / ITEM_ARGS do
  answers[i] = {'pending'}
end

local facts = {}
for l in pairs(listed) do
  if l ~= known_list then
    local m = redis.call('HMGET', client_prefix .. 'l:' .. l, 'key', 'cap', 'fmt', 'bits', 'cs')
    for _, v in ipairs({l, m[1] or false, m[2] or false, m[3] or false, m[4] or false, m[5] or false}) do
      table.insert(facts, v)
    end
  end
end
return {answers, opened, facts}
