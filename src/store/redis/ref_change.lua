-- The second step of a change by ref: sets every entry bound to the ref, in
-- all its lists, atomically with the request's idempotency record ('R', see
-- records.lua), the entries' change times, the change indexes of the space
-- (space.lua), one version bump and one announcement per list changed.
-- Runs after records.lua, space.lua and events.lua. All keys share the
-- client's hash tag.
--
-- The entries come from ref_read.lua's runs, turned into positions by the
-- adapter (the index permutation runs in Rust), with the stamp they were
-- read at: when the ref has bound more entries since, nothing is done and
-- the answer is 'stale' (the adapter reads again). Per entry the rule of
-- its list (one letter per current value, as set_status.lua): 'C' changes
-- it, 'U' counts it already, anything else skips it. Every list is checked
-- whole before anything is written: one damaged list changes nothing.
--
-- With an event seed, each entry changed records one event in the client's
-- outbox (events.lua), in allocation order (the lists' order, then their
-- entries'), with ids seed.id(0), seed.id(1), ..., after every check, so
-- the events exist if and only if the changes do.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `RefChangeArgs` in scripts.rs feeds them in this
-- order (a unit test holds the two together). Each list is ITEM_ARGS
-- values of `items`, in the order of the `item_*` names below, and its keys
-- are the next 2 + item_chunks of `list_keys`: metadata, change times,
-- chunks.
--
-- Returns {'changed'}, {'stale'}, {'damaged', list}, {'replayed', at,
-- changed, skipped, already} or {'done', changed, skipped, already}.

local legacy_record_key = KEYS[1] -- the jti's record as earlier versions kept it
local list_keys = {unpack(KEYS, 2)} -- each list's metadata, change times and chunks
local client_prefix = ARGV[1]  -- `<prefix>{<client>}:`, where the client's records are
local space = ARGV[2]          -- the entry space's prefix
local ref = ARGV[3]            -- the ref's text
local record_field = ARGV[4]   -- the jti's record field (20 bytes, see records.lua)
local digest = ARGV[5]         -- request digest (32 bytes)
local now = tonumber(ARGV[6])  -- unix s: the time of every change made
local record_end = ARGV[7]     -- unix s, exclusive
local stamp = tonumber(ARGV[8]) -- the ref's last binding when its entries were read
local value = tonumber(ARGV[9]) -- target value
local channel = ARGV[10]       -- where each changed list is announced ('' nowhere)
local events = ARGV[11]        -- the events' seed, kind and format ('' none, see ev_seed)
local items = {unpack(ARGV, 12)} -- the lists, ITEM_ARGS values each:
local ITEM_ARGS = 8
-- item_list: the list's id (the announcement)
-- item_field_type: BITFIELD type of its entries ('u2')
-- item_rules: one rule letter per current value 0..3 for its width
-- item_byte_len: its byte length
-- item_chunk_bytes: bytes per chunk
-- item_chunks: how many chunks (keys)
-- item_entries: its entries, ENTRY_SIZE bytes each (ENTRY)
-- item_base: its base seq (an entry's allocation number is its seq minus
--   this; events name entries by list and allocation number)
-- An entry: its chunk (1-based), BITFIELD offset in the chunk, time
-- bucket, offset in the bucket, seq.
local ENTRY = '>I2I4I4I2I6'
local ENTRY_SIZE = 18

local state = rec_state(client_prefix)
local stale = rec_check(client_prefix, state, {record_field})
if stale then
  return stale
end
local rec, where = rec_lookup(client_prefix, state, record_field, legacy_record_key, digest, now)
if rec == 'changed' or (rec and rec.kind ~= 'R') then
  return {'changed'}
elseif rec then
  return {'replayed', rec.at, rec.changed, rec.skipped, rec.already}
end
local _, last = ref_index(space, ref)
if (last or 0) ~= stamp then
  return {'stale'}
end

local lists = {}
local next_key = 1
for i = 1, #items / ITEM_ARGS do
  local at = (i - 1) * ITEM_ARGS
  local l = {
    id = items[at + 1],
    field_type = items[at + 2],
    rules = items[at + 3],
    byte_len = tonumber(items[at + 4]),
    chunk_bytes = tonumber(items[at + 5]),
    entries = items[at + 7],
    base = tonumber(items[at + 8]),
    meta = list_keys[next_key],
    times = list_keys[next_key + 1],
    chunks = {},
  }
  for c = 1, tonumber(items[at + 6]) do
    l.chunks[c] = list_keys[next_key + 1 + c]
  end
  next_key = next_key + 2 + #l.chunks
  lists[i] = l
end
for _, l in ipairs(lists) do
  local whole = redis.call('EXISTS', l.meta) == 1
    and chunks_whole(function(k) return l.chunks[k + 1] end, l.byte_len, l.chunk_bytes)
  if not whole then
    return {'damaged', l.id}
  end
end

-- Decide every entry first, then write.
local changed, skipped, already = 0, 0, 0
local by_old = {} -- value before -> seqs changed from it
for _, l in ipairs(lists) do
  local by_chunk = {}
  for p = 1, #l.entries, ENTRY_SIZE do
    local chunk, offset, bucket, slot, seq = struct.unpack(ENTRY, l.entries, p)
    local es = by_chunk[chunk]
    if not es then
      es = {}
      by_chunk[chunk] = es
    end
    es[#es + 1] = {offset, bucket, slot, seq, p}
  end
  -- changed: the positions in l.entries of the entries changed, for the
  -- events (decided per chunk, recorded in allocation order).
  l.sets, l.slots, l.changed = {}, {}, {}
  for chunk, es in pairs(by_chunk) do
    local gets = {}
    for _, e in ipairs(es) do
      local n = #gets
      gets[n + 1], gets[n + 2], gets[n + 3] = 'GET', l.field_type, e[1]
    end
    local cur = call_chunked('BITFIELD', l.chunks[chunk], gets, 3)
    local sets = {}
    for j, e in ipairs(es) do
      local rule = string.sub(l.rules, cur[j] + 1, cur[j] + 1)
      if rule == 'C' then
        changed = changed + 1
        local n = #sets
        sets[n + 1], sets[n + 2], sets[n + 3], sets[n + 4] = 'SET', l.field_type, e[1], value
        local slots = l.slots[e[2]]
        if not slots then
          slots = {}
          l.slots[e[2]] = slots
        end
        slots[#slots + 1] = e[3]
        local seqs = by_old[cur[j]]
        if not seqs then
          seqs = {}
          by_old[cur[j]] = seqs
        end
        seqs[#seqs + 1] = e[4]
        l.changed[e[5]] = true
      elseif rule == 'U' then
        already = already + 1
      else
        skipped = skipped + 1
      end
    end
    if #sets > 0 then
      l.sets[chunk] = sets
    end
  end
end

for _, l in ipairs(lists) do
  local any = false
  for chunk, sets in pairs(l.sets) do
    call_chunked('BITFIELD', l.chunks[chunk], sets, 4)
    any = true
  end
  for bucket, slots in pairs(l.slots) do
    local v = redis.call('HGET', l.times, bucket) or ''
    for _, slot in ipairs(slots) do
      v = time_put(v, slot, now)
    end
    redis.call('HSET', l.times, bucket, v)
  end
  if any then
    redis.call('HINCRBY', l.meta, 'v', 1)
    if channel ~= '' then
      redis.call('PUBLISH', channel, l.id)
    end
  end
end
for old, seqs in pairs(by_old) do
  index_change(space, seqs, old, value, now)
end
local ev = ev_seed(events)
if ev then
  local k = 0
  for _, l in ipairs(lists) do
    for p = 1, #l.entries, ENTRY_SIZE do
      if l.changed[p] then
        local seq = select(5, struct.unpack(ENTRY, l.entries, p))
        ev_record(client_prefix, ev_id(ev, k), ev.kind, ev.format, now, {l.id, seq - l.base, 1}, ref, true)
        k = k + 1
      end
    end
  end
end
rec_put(client_prefix, state, where,
  struct.pack(REF_CHANGE_RECORD, 'R', record_end, string.sub(digest, 1, 8), now, changed, skipped, already),
  record_end, now)
return {'done', changed, skipped, already}
