-- The event outbox of a client (webhooks, see ports/outbox.rs): shared by
-- the scripts that record events (allocate.lua, set_status.lua and
-- ref_change.lua, after records.lua and space.lua) and by the outbox's own
-- scripts (take.lua, delivered.lua, retry.lua, dead_letter.lua and
-- redeliver.lua, after records.lua alone, for its call_chunked). Only
-- functions and constants here; neither KEYS nor ARGV is read.
--
-- Keys, all under the client's prefix `<prefix>{<client>}:` (keys.rs):
--   ev   stream: the journal, one entry per event that is neither delivered
--        nor dead, in record order (XADD '*' in the script that makes the
--        change, so the stream id orders events as they were recorded; its
--        ms part is Redis's clock and is never used as a time). Fields:
--          i  the event id, 16 bytes (EventId::to_bytes)
--          k  the kind's code (EventKind::code: 1 revoked, 2 suspended,
--             3 unsuspended, 4 issued)
--          f  the list format's name (`token`, `bitstring`)
--          t  `at`, the change's time (unix s)
--          e  the entries, in allocation order, as runs of EV_RUN: list id
--             u48, first allocation number u48, count u32 (the adapter
--             turns allocation numbers into indexes, as for the listing)
--          r  the ref's text (absent: none)
--          p  the stream ids, space separated, of the events of its entries
--             that were undelivered and not dead when it was recorded
--             (absent: none); take.lua holds it back while one of them is
--             still in the journal
--        Consumer group EV_GROUP (created by take.lua at its first read):
--        `>` reads hand out waiting events, and the pending list names the
--        consumer that holds each taken event (XCLAIM moves it on).
--   evq  zset: stream id -> due (unix ms, the takers' clock) of every taken
--        event still in the journal: held (due = end of its lease),
--        scheduled (a retry's time) or held back (due = the next look)
--   eva  hash: stream id -> how many times the event was handed out
--   evl  hash: entry (EV_ENTRY: list id u48, allocation number u48) ->
--        stream id of the latest event recorded for it; removed when that
--        event is delivered or dead, so it only names events in the journal
--        (and its size follows the undelivered events, not the entries)
--   evx  hash: event id (16 bytes) -> dead letter (ev_dead_pack of kind,
--        format, at, entries, ref, attempts, dead_at (unix ms), error)
--   evn  hash: stream id -> the stream ids, space separated, of the events
--        whose `p` names it (the reverse of `p`); when it leaves the journal
--        those waiting in evq are made due at once (ev_release), so a quick
--        series of changes to one entry does not wait `recheck` per step
-- An event is waiting while in ev and not yet read by the group, held or
-- scheduled while in ev and evq, dead while in evx, and gone when in none.

local EV_GROUP = 'dispatch'
local EV_RUN = '>I6I6I4'
local EV_RUN_SIZE = 16
local EV_ENTRY = '>I6I6'

-- The request's event argument: '' when it records no event, else the
-- seed's 12 bytes (ms u48, nonce u48: the first 12 bytes of every id it
-- mints), the kind's code (1 byte) and the format's name. Returns nil for
-- ''.
local function ev_seed(arg)
  if #arg < 13 then
    return nil
  end
  return {
    seed = string.sub(arg, 1, 12),
    kind = string.byte(arg, 13),
    format = string.sub(arg, 14),
  }
end

-- The id of the seed's `ordinal`-th event (EventSeed::id).
local function ev_id(ev, ordinal)
  return ev.seed .. struct.pack('>I4', ordinal)
end

-- The evl fields of the entries of the packed runs `e`.
local function ev_entries(e)
  local out = {}
  for p = 1, #e - EV_RUN_SIZE + 1, EV_RUN_SIZE do
    local list, first, count = struct.unpack(EV_RUN, e, p)
    for n = first, first + count - 1 do
      out[#out + 1] = struct.pack(EV_ENTRY, list, n)
    end
  end
  return out
end

-- Records an event of the client of `prefix` in its journal: event id `id`,
-- kind code, format, time `at`, entries as flat runs {list id (hex), first
-- allocation number, count, ...}, ref ('' none). `may_follow` says whether
-- its entries can have earlier events: false for entries allocated by this
-- very request, which saves a read per entry. Every command here succeeds
-- on keys of the right type, so a script that calls it after its last
-- check writes its change and its event, or neither. Returns the stream id.
local function ev_record(prefix, id, kind, format, at, runs, ref, may_follow)
  local packed = {}
  for i = 1, #runs, 3 do
    packed[#packed + 1] = struct.pack(EV_RUN, tonumber(runs[i], 16), runs[i + 1], runs[i + 2])
  end
  local e = table.concat(packed)
  local entries = ev_entries(e)
  local fields = {'i', id, 'k', kind, 'f', format, 't', at, 'e', e}
  if ref ~= '' then
    fields[#fields + 1], fields[#fields + 2] = 'r', ref
  end
  local prev_text
  if may_follow then
    local prev, seen = {}, {}
    for _, sid in ipairs(call_chunked('HMGET', prefix .. 'evl', entries, 1)) do
      if sid and not seen[sid] then
        seen[sid] = true
        prev[#prev + 1] = sid
      end
    end
    if #prev > 0 then
      prev_text = table.concat(prev, ' ')
      fields[#fields + 1], fields[#fields + 2] = 'p', prev_text
    end
  end
  local sid = redis.call('XADD', prefix .. 'ev', '*', unpack(fields))
  if prev_text then
    for before in string.gmatch(prev_text, '%S+') do
      local later = redis.call('HGET', prefix .. 'evn', before)
      redis.call('HSET', prefix .. 'evn', before, later and (later .. ' ' .. sid) or sid)
    end
  end
  local latest = {}
  for i, entry in ipairs(entries) do
    latest[2 * i - 1], latest[2 * i] = entry, sid
  end
  call_chunked('HSET', prefix .. 'evl', latest, 2)
  return sid
end

-- A stream entry's field list as a table.
local function ev_fields(flat)
  local f = {}
  for i = 1, #flat - 1, 2 do
    f[flat[i]] = flat[i + 1]
  end
  return f
end

-- The fields of journal entry `sid` of `stream`, or nil when it is gone.
local function ev_read(stream, sid)
  local r = redis.call('XRANGE', stream, sid, sid)
  if #r == 0 then
    return nil
  end
  return ev_fields(r[1][2])
end

-- Takes event `sid` (fields `f`, nil when already gone from the journal)
-- out of the outbox: acknowledged, out of the journal, its due time and
-- attempts dropped, and its entries no longer pointing at it.
local function ev_remove(stream, due_key, attempts_key, latest_key, sid, f)
  redis.call('XACK', stream, EV_GROUP, sid)
  redis.call('XDEL', stream, sid)
  redis.call('ZREM', due_key, sid)
  redis.call('HDEL', attempts_key, sid)
  if f and f.e then
    local entries = ev_entries(f.e)
    local cur = call_chunked('HMGET', latest_key, entries, 1)
    local gone = {}
    for i, entry in ipairs(entries) do
      -- Only where it is still the latest: a later event of the entry
      -- must stay findable for the events recorded after it.
      if cur[i] == sid then
        gone[#gone + 1] = entry
      end
    end
    call_chunked('HDEL', latest_key, gone, 1)
  end
end

-- The events event `sid` held back (evn) are due at once: those waiting in
-- evq get due 0 (XX LT: only a due time lowered, never a member added);
-- those not yet read by the group are taken as waiting anyway. Returns how
-- many became due.
local function ev_release(due_key, next_key, sid)
  local later = redis.call('HGET', next_key, sid)
  if not later then
    return 0
  end
  redis.call('HDEL', next_key, sid)
  local woken = 0
  for after in string.gmatch(later, '%S+') do
    woken = woken + redis.call('ZADD', due_key, 'XX', 'LT', 'CH', 0, after)
  end
  return woken
end

-- A dead letter: its values (strings), each a u32 length then its bytes.
local function ev_dead_pack(values)
  local parts = {}
  for i, v in ipairs(values) do
    parts[i] = struct.pack('>I4', #v) .. v
  end
  return table.concat(parts)
end

-- The values of a dead letter, or nil when it is not one.
local function ev_dead_unpack(blob)
  local out, p = {}, 1
  while p <= #blob do
    if p + 3 > #blob then
      return nil
    end
    local len = struct.unpack('>I4', blob, p)
    if p + 3 + len > #blob then
      return nil
    end
    out[#out + 1] = string.sub(blob, p + 4, p + 3 + len)
    p = p + 4 + len
  end
  return out
end
