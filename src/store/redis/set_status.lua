-- Sets one entry of a list, atomically with its checks, its idempotency
-- record, its change time, the list's version and, for a list with a base
-- (opened since entry spaces exist), the change indexes of its entry space
-- (space.lua). Runs after records.lua (records, chunks, change times) and
-- space.lua, then events.lua: with an event seed, a change made records its
-- event (one, with the entry's ref) in the client's outbox in the same
-- step. All keys share the owning client's hash tag.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `SetStatusArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- The record (see records.lua) is a change record: outcome d for a change
-- made, a for "already had that status", and its time (0: none). Only those
-- two outcomes are recorded; refusals change nothing.
--
-- Change times (<meta>:c, see records.lua). Lists changed by earlier
-- versions may also hold times in <meta>:t (index -> time), read when a
-- bucket has none.
--
-- Returns {'replayed', 'd'|'a', at|''}, {'changed'}, {'notfound'},
-- {'notyours'}, {'never'}, {'damaged'}, {'already', current, at|nil},
-- {'notallowed', current}, {'toowide'} or {'done', previous, version}.

local meta_key = KEYS[1]      -- list metadata (hash)
local times_key = KEYS[2]     -- change times by bucket (hash)
local legacy_times_key = KEYS[3] -- change times by index, earlier versions (hash)
local legacy_record_key = KEYS[4] -- the jti's record as earlier versions kept it
local chunk_keys = {unpack(KEYS, 5)} -- the list's chunks, in order
local client = ARGV[1]        -- the client asking
local n = ARGV[2]             -- allocation number of the entry
local field_type = ARGV[3]    -- BITFIELD type ('u2')
local chunk = tonumber(ARGV[4]) -- the entry's chunk (1-based in chunk_keys)
local offset = ARGV[5]        -- BITFIELD bit offset of the entry in its chunk
local value = ARGV[6]         -- target value
local now = tonumber(ARGV[7]) -- unix s
local idx = ARGV[8]           -- entry index
-- One rule letter per current value 0..3: 'U' unchanged, 'C' change,
-- 'N' not allowed, 'W' a change to a value the list's width cannot hold.
-- Encoded by scripts.rs from the one status rule in Rust, so the rule
-- lives in one place; other values get '' and so are not allowed.
local rules = ARGV[9]
local digest = ARGV[10]       -- request digest (32 bytes)
local record_end = ARGV[11]   -- unix s, exclusive
local byte_len = tonumber(ARGV[12]) -- the list's byte length
local chunk_bytes = tonumber(ARGV[13]) -- bytes per chunk
-- The change channel (empty: announce nothing) and the list's id, its
-- message. Published here, after the version bump, so that a message exists
-- if and only if a change was applied, and replicas that hear it find the
-- new version.
local channel = ARGV[14]
local list_id = ARGV[15]
local record_field = ARGV[16] -- the jti's record field (20 bytes, see records.lua)
local bucket = ARGV[17]       -- the entry's time bucket
local slot = tonumber(ARGV[18]) -- the entry's offset in its bucket
local client_prefix = ARGV[19] -- `<prefix>{<client>}:`, where the client's records are
-- The entry's seq in its entry space, and the space's prefix; seq is ''
-- for a list opened before entry spaces (no index records its changes).
local seq = ARGV[20]
local space = ARGV[21]
-- The event to record with a change made ('' none: the client has no
-- webhook, and the script does exactly what it did before events existed):
-- see ev_seed in events.lua.
local events = ARGV[22]

-- The recorded time of the entry's last change, or nil.
local function time_get()
  local v = redis.call('HGET', times_key, bucket)
  if v then
    local pos, found = time_search(v, slot)
    if found then
      local _, at = struct.unpack('>I2I4', v, pos)
      return at
    end
  end
  local old = redis.call('HGET', legacy_times_key, idx)
  return old and tonumber(old) or nil
end

local function time_set(at)
  local v = redis.call('HGET', times_key, bucket) or ''
  redis.call('HSET', times_key, bucket, time_put(v, slot, at))
end

local state = rec_state(client_prefix)
local stale = rec_check(client_prefix, state, {record_field})
if stale then
  return stale
end
local rec, where = rec_lookup(client_prefix, state, record_field, legacy_record_key, digest, now)
if rec == 'changed' or (rec and rec.kind ~= 'C') then
  return {'changed'}
elseif rec then
  return {'replayed', rec.outcome, rec.at > 0 and rec.at or ''}
end

local function record(outcome, at)
  rec_put(client_prefix, state, where,
    struct.pack(CHANGE_RECORD, 'C', record_end, string.sub(digest, 1, 8), outcome, at or 0),
    record_end, now)
end

local m = redis.call('HMGET', meta_key, 'owner', 'n')
if not m[1] then
  return {'notfound'}
end
if m[1] ~= client then
  return {'notyours'}
end
if tonumber(n) >= tonumber(m[2]) then
  return {'never'}
end
if not chunks_whole(function(k) return chunk_keys[k + 1] end, byte_len, chunk_bytes) then
  return {'damaged'}
end
local bytes_key = chunk_keys[chunk]
local cur = redis.call('BITFIELD', bytes_key, 'GET', field_type, offset)[1]
local rule = string.sub(rules, cur + 1, cur + 1)
if rule == 'U' then
  local at = time_get()
  record('a', at)
  return {'already', cur, at}
end
if rule == 'W' then
  return {'toowide'}
end
if rule ~= 'C' then
  return {'notallowed', cur}
end
redis.call('BITFIELD', bytes_key, 'SET', field_type, offset, value)
time_set(now)
if seq ~= '' then
  index_change(space, {tonumber(seq)}, cur, tonumber(value), now)
end
local v = redis.call('HINCRBY', meta_key, 'v', 1)
record('d', now)
-- The event, after every check: written together with the change or not
-- at all. Its ref is the one the entry was issued with (none for a list
-- opened before entry spaces).
local ev = ev_seed(events)
if ev then
  local ref = seq ~= '' and ref_of_seq(space, tonumber(seq)) or ''
  ev_record(client_prefix, ev_id(ev, 0), ev.kind, ev.format, now, {list_id, tonumber(n), 1}, ref, true)
end
if channel ~= '' then
  redis.call('PUBLISH', channel, list_id)
end
return {'done', cur, v}
