-- Shared by every script (scripts.rs builds each as this prelude, then
-- space.lua and events.lua as it needs them, followed by its own text): the
-- idempotency records of a client, the chunks of a list's bytes, a list's
-- change times, and commands whose arguments are cut into several calls.
-- Only functions and constants here; neither KEYS nor ARGV is read.
--
-- Records. A client's records live in a table of small hashes ("shards"):
--   <client prefix>r       hash: L (level) and s (split pointer); absent: 0, 0
--   <client prefix>r:<n>   hash: field (h, 4 bytes, and the jti, 16) -> record,
--                          and '~' -> the shard's own facts (u32 each): when
--                          it expires (unix s, by the requests' clock: at
--                          least SHARD_SLACK after its latest record ends,
--                          so its TTL is renewed once per SHARD_SLACK, not on
--                          every write) and how many records it holds (read
--                          with the record, so no HLEN per write)
-- One key per record would cost ~200 B of Redis memory each (key, value
-- object, expiry entry); in a hash kept small enough for Redis's compact
-- encoding (listpack) a record costs its field and value and a few bytes of
-- header, ~50 B. Linear hashing keeps every shard small at any request rate:
-- the jti's shard is h mod 2^L, or h mod 2^(L+1) when that is below s, with
-- h the first 32 bits of the jti's SHA-256; a shard that outgrows REC_SPLIT
-- records is pruned of records that are over (once per REC_PRUNE_EVERY
-- writes past the limit, so a shard that stays full is not read on every
-- write), and while it is still full and not yet split in this round of the
-- table, the table grows by one shard (shard s is split into s and
-- s + 2^L). A shard already split this round that overflows holds more
-- than twice its share, which more splitting would not relieve (only jtis
-- that collide do that), so it is left to grow. When a write finds its
-- shard nearly empty the last split is undone if the two shards it made are
-- small, so a quiet client's table shrinks again. Every jti thus has
-- exactly one place to look, whatever the table's size.
--
-- A record, binary, big-endian: kind (1 byte), end (u32, unix s, exclusive:
-- the record counts while the request's clock is before it), the first 8
-- bytes of the request digest (a changed request matches them by chance
-- once in 2^64), then by kind
--   'I' issue:  list id (its 12 hex digits as 6 bytes), first allocation
--               number (u32), count (u32)
--   'C' change: outcome ('d' done now, 'a' already had the status),
--               time (u32; 0 = none)
--   'S' issue:  first entry seq of its space (u48), count (u32): the runs
--               (list, first allocation number, count) are rebuilt from the
--               space's list registry (see space.lua); written by this
--               version, 'I' records are still replayed
--   'R' change by ref: time (u32), changed, skipped, already (u32 each)
--   'L' claim:  nothing more (a single-use jti, `claim.lua`)
--   'M' mark:   nothing more (a request whose work is in another shard of
--               a client spread over several, `mark.lua`)
-- Records of earlier versions (one string per jti, `j:<jti>`) are still
-- read until they expire, and never written.

-- Declared keys. Redis (a cluster above all) requires every key a script
-- touches to be named in KEYS. The adapter builds every key a call may
-- touch and passes it there; the scripts still build the names they use
-- (with the same parts), and only touch a name that was declared: what a
-- script may need but the caller could not foresee (a record shard chosen
-- by the table's state, the client's current list) is checked against the
-- declared set (DECLARED, every name in KEYS, made by the header scripts.rs
-- puts before this prelude) before anything is written, and answered with
-- a STALE error (`STALE records <level> <split>` or `STALE current <list
-- id>`) for the caller to declare the right keys and call again. In debug
-- builds the header also checks every key of every `redis.call` against
-- DECLARED (see `rcall` in scripts.rs).

-- Sizes in records ('~' not counted). Smaller shards are scanned faster
-- (a lookup reads its shard's fields one by one) but share their ~150 B of
-- key overhead among fewer records.
local REC_SPLIT = 64       -- a shard above this is pruned, then maybe split
local REC_KEEP = 48        -- ...split only if pruning left more than this
local REC_PRUNE_EVERY = 16 -- a full shard is pruned once per this many writes
local REC_MERGE_PROBE = 4  -- a write into a shard this small probes a merge
local REC_MERGE = 16       -- the last split is undone if its two shards hold this many
local SHARD_SLACK = 300    -- s a shard outlives its latest record at most
local REC_SCAN_MAX = 1024  -- a shard larger than this is never scanned (only
                           -- jtis a client chose to collide can make one)
local ISSUE_RECORD = '>c1I4c8c6I4I4'  -- 27 bytes
local CHANGE_RECORD = '>c1I4c8c1I4'   -- 18 bytes
local SEQ_RECORD = '>c1I4c8I6I4'      -- 23 bytes
local REF_CHANGE_RECORD = '>c1I4c8I4I4I4I4' -- 29 bytes
local CLAIM_RECORD = '>c1I4c8'        -- 13 bytes

-- The hash a record's field starts with (0 for anything shorter: never
-- ours). A field is the first 4 bytes of the jti's SHA-256, big-endian,
-- then the jti's 16 bytes, made by scripts.rs: jtis are chosen by clients,
-- and time-based UUIDs (v1, v7) or structured test ids would cluster under
-- any simple fold of their bytes, leaving some shards overfull however far
-- the table grows; with the hash in the field a split reads it back
-- instead of hashing every record again.
local function field_hash(field)
  if #field < 4 then
    return 0
  end
  return (struct.unpack('>I4', field))
end

local function rec_shard(h, level, split)
  local n = h % 2 ^ level
  if n < split then
    n = h % 2 ^ (level + 1)
  end
  return n
end

local function shard_key(prefix, n)
  return prefix .. 'r:' .. n
end

-- The end of a record; 0 (over) for anything malformed, so a bad value is
-- dropped rather than stopping the script half-way.
local function rec_end(v)
  if #v < 5 then
    return 0
  end
  local _, e = struct.unpack('>c1I4', v)
  return e
end

-- List ids are 12 hex digits, 48 bits: exact in a Lua number.
-- A shard's '~' value and back: (expires, records); records nil when
-- unknown (the caller counts them).
local function shard_facts(expires, records)
  return struct.pack('>I4I4', expires, records)
end

local function read_facts(v)
  if v and #v == 8 then
    return struct.unpack('>I4I4', v)
  end
  return 0, nil
end

local function list_bin(hex)
  return struct.pack('>I6', tonumber(hex, 16))
end

local function list_hex(bin)
  return string.format('%012X', (struct.unpack('>I6', bin)))
end

-- The client's table state {level, split}: read once per script, kept up
-- to date by the splits and merges the script makes.
local function rec_state(prefix)
  local st = redis.call('HMGET', prefix .. 'r', 'L', 's')
  return {level = tonumber(st[1]) or 0, split = tonumber(st[2]) or 0}
end

-- Nil when every record shard the requests' `fields` fall in under the
-- table's `state` is declared (and the state's own key, and the shards of
-- the next split and of undoing the last one); else the STALE
-- error to answer, before anything is written, with the table's state, so
-- the caller declares the right shards and calls again. Splits and merges
-- made later in the same call only move records between declared shards
-- (rec_split and rec_merge check that), so every later lookup finds its
-- shard declared too.
local function rec_check(prefix, state, fields)
  local level, split = state.level, state.split
  -- The next split's shards and the last split's (a merge undoes it): a
  -- caller whose idea of the state fell behind its declared splits learns
  -- the state here, rather than the table stop growing.
  local stale = not DECLARED[prefix .. 'r']
    or not DECLARED[shard_key(prefix, split)]
    or not DECLARED[shard_key(prefix, split + 2 ^ level)]
  if level > 0 or split > 0 then
    local prev_level, prev_split = level, split - 1
    if split == 0 then
      prev_level = level - 1
      prev_split = 2 ^ prev_level - 1
    end
    stale = stale or not DECLARED[shard_key(prefix, prev_split)]
      or not DECLARED[shard_key(prefix, prev_split + 2 ^ prev_level)]
  end
  for _, f in ipairs(fields) do
    stale = stale or not DECLARED[shard_key(prefix, rec_shard(field_hash(f), state.level, state.split))]
  end
  if stale then
    return redis.error_reply(string.format('STALE records %d %d', state.level, state.split))
  end
  return nil
end

-- The live record under `field` (a jti's, see field_hash) for a request
-- with `digest` at `now`, decoded:
-- nil when there is none (or it is over), 'changed' when it was written for
-- another request (another digest, or a record this version cannot read),
-- else {kind = 'I', list =, first =, count =},
-- {kind = 'C', outcome =, at =} (at 0: none), {kind = 'S', first_seq =,
-- count =}, {kind = 'R', at =, changed =, skipped =, already =} or
-- {kind = 'L'} or {kind = 'M'}. Also where a new record for the jti goes, for rec_put.
local function rec_lookup(prefix, state, field, legacy_key, digest, now)
  local level, split = state.level, state.split
  local n = rec_shard(field_hash(field), level, split)
  local where = {
    key = shard_key(prefix, n),
    field = field,
    n = n,
    level = level,
    split = split,
  }
  local got = redis.call('HMGET', where.key, where.field, '~')
  local v = got[1]
  where.present = v and true or false
  where.expires, where.records = read_facts(got[2])
  if v then
    if now >= rec_end(v) then
      return nil, where
    end
    local kind, _, d = struct.unpack('>c1I4c8', v)
    if d ~= string.sub(digest, 1, 8) then
      return 'changed', where
    end
    if kind == 'I' and #v == 27 then
      local _, _, _, list, first, count = struct.unpack(ISSUE_RECORD, v)
      return {kind = 'I', list = list_hex(list), first = first, count = count}, where
    elseif kind == 'C' and #v == 18 then
      local _, _, _, outcome, at = struct.unpack(CHANGE_RECORD, v)
      return {kind = 'C', outcome = outcome, at = at}, where
    elseif kind == 'S' and #v == 23 then
      local _, _, _, first_seq, count = struct.unpack(SEQ_RECORD, v)
      return {kind = 'S', first_seq = first_seq, count = count}, where
    elseif kind == 'R' and #v == 29 then
      local _, _, _, at, changed, skipped, already = struct.unpack(REF_CHANGE_RECORD, v)
      return {kind = 'R', at = at, changed = changed, skipped = skipped, already = already}, where
    elseif kind == 'L' and #v == 13 then
      return {kind = 'L'}, where
    elseif kind == 'M' and #v == 13 then
      return {kind = 'M'}, where
    end
    return 'changed', where
  end
  -- Earlier versions: <digest (32 bytes)><body>:<end>, the body
  -- I:<list>:<first>:<count>, D|F:<lease>:<list>:<first>:<count> or
  -- C:<d|a>:<at or empty>.
  local raw = redis.call('GET', legacy_key)
  if not raw then
    return nil, where
  end
  local expiry = tonumber(string.match(raw, ':(%d+)$'))
  if not expiry or now >= expiry then
    return nil, where
  end
  if string.sub(raw, 1, 32) ~= digest then
    return 'changed', where
  end
  local rest = string.sub(raw, 33)
  local list, first, count = string.match(rest, '^I:(%x+):(%d+):(%d+):%d+$')
  if not list then
    list, first, count = string.match(rest, '^[DF]:%d+:(%x+):(%d+):(%d+):%d+$')
  end
  if list then
    return {kind = 'I', list = list, first = tonumber(first), count = tonumber(count)}, where
  end
  local outcome, at = string.match(rest, '^C:([da]):(%d*):%d+$')
  if outcome then
    return {kind = 'C', outcome = outcome, at = tonumber(at) or 0}, where
  end
  return 'changed', where
end

-- Rewrites shard `from` under the table state (level, split): each live
-- record goes to its shard there, records that are over are dropped. The
-- rewrite also gives a shard that outgrew the compact encoding a compact
-- one again.
local function rec_rehash(prefix, from, level, split, now)
  local src = shard_key(prefix, from)
  local all = redis.call('HGETALL', src)
  redis.call('DEL', src)
  local out = {}
  for i = 1, #all, 2 do
    local e = all[i] ~= '~' and rec_end(all[i + 1]) or 0
    if e > now then
      local n = rec_shard(field_hash(all[i]), level, split)
      local t = out[n]
      if not t then
        t = {fields = {}, last = 0}
        out[n] = t
      end
      table.insert(t.fields, all[i])
      table.insert(t.fields, all[i + 1])
      if e > t.last then
        t.last = e
      end
    end
  end
  for n, t in pairs(out) do
    local key = shard_key(prefix, n)
    local expires, records = read_facts(redis.call('HGET', key, '~'))
    if not records then
      records = math.max(redis.call('HLEN', key) - 1, 0)
    end
    expires = math.max(expires, t.last + SHARD_SLACK)
    -- '~' first: every lookup reads it, and a listpack is read from the
    -- front.
    table.insert(t.fields, 1, shard_facts(expires, records + #t.fields / 2))
    table.insert(t.fields, 1, '~')
    redis.call('HSET', key, unpack(t.fields))
    redis.call('EXPIRE', key, expires - now)
  end
end

-- Drops the records of shard `key` that are over; returns how many are
-- left.
local function rec_prune(key, now)
  local all = redis.call('HGETALL', key)
  local over = {}
  local expires, records = 0, 0
  for i = 1, #all, 2 do
    if all[i] == '~' then
      expires = read_facts(all[i + 1])
    elseif rec_end(all[i + 1]) <= now then
      table.insert(over, all[i])
    else
      records = records + 1
    end
  end
  if #over > 0 then
    redis.call('HDEL', key, unpack(over))
  end
  redis.call('HSET', key, '~', shard_facts(expires, records))
  return records
end

-- Grows the table by one shard: splits shard `split` between itself and
-- split + 2^level.
local function rec_split(prefix, state, now)
  local level, split = state.level, state.split
  -- Only between shards the caller declared (it declares the next few
  -- splits): otherwise a later write splits.
  if not (DECLARED[shard_key(prefix, split)] and DECLARED[shard_key(prefix, split + 2 ^ level)]) then
    return
  end
  local next_level, next_split = level, split + 1
  if next_split == 2 ^ level then
    next_level, next_split = level + 1, 0
  end
  rec_rehash(prefix, split, next_level, next_split, now)
  redis.call('HSET', prefix .. 'r', 'L', next_level, 's', next_split)
  state.level, state.split = next_level, next_split
end

-- Shrinks the table by one shard, undoing the last split, if the two
-- shards it made hold at most REC_MERGE records.
local function rec_merge(prefix, state, now)
  local level, split = state.level, state.split
  local prev_level, prev_split = level, split - 1
  if split == 0 then
    prev_level = level - 1
    prev_split = 2 ^ prev_level - 1
  end
  local last = prev_split + 2 ^ prev_level
  if not (DECLARED[shard_key(prefix, last)] and DECLARED[shard_key(prefix, prev_split)]) then
    return
  end
  -- Fields, '~' included: a little above the records, which only makes a
  -- merge a little rarer.
  local held = redis.call('HLEN', shard_key(prefix, last))
    + redis.call('HLEN', shard_key(prefix, prev_split))
  if held > REC_MERGE then
    return
  end
  rec_rehash(prefix, last, prev_level, prev_split, now)
  redis.call('HSET', prefix .. 'r', 'L', prev_level, 's', prev_split)
  state.level, state.split = prev_level, prev_split
end

-- Writes the record `value`, which counts until `record_end`, where
-- rec_lookup said (its jti's field and shard), and keeps the table's shards
-- small.
local function rec_put(prefix, state, where, value, record_end, now)
  local key = where.key
  local records = where.records
  if not records then
    records = math.max(redis.call('HLEN', key) - 1, 0)
  end
  if not where.present then
    records = records + 1
  end
  -- The shard must outlive its latest record: when this one ends after the
  -- shard's recorded expiry, the expiry moves SHARD_SLACK past it.
  local expires = where.expires
  local renew = tonumber(record_end) > expires
  if renew then
    expires = record_end + SHARD_SLACK
  end
  redis.call('HSET', key, where.field, value, '~', shard_facts(expires, records))
  if renew then
    redis.call('EXPIRE', key, expires - now)
  end
  if records > REC_SPLIT and records <= REC_SCAN_MAX then
    if (records - REC_SPLIT) % REC_PRUNE_EVERY == 1 then
      records = rec_prune(key, now)
    end
    local unsplit = where.n >= where.split and where.n < 2 ^ where.level
    -- (The state may have moved since the lookup, in an earlier write of
    -- the same script: split only from the state the shard was found in.)
    if records > REC_KEEP and unsplit and state.level == where.level
      and state.split == where.split then
      rec_split(prefix, state, now)
    end
  elseif records <= REC_MERGE_PROBE and (where.level > 0 or where.split > 0)
    and state.level == where.level and state.split == where.split then
    rec_merge(prefix, state, now)
  end
end

-- Chunks. A list's bytes are cut every `cs` bytes (its metadata field; a
-- list made before chunking has none and is one chunk) into strings whose
-- allocations fit the allocator's size classes (see layout.rs).

local function chunk_key(meta, k)
  if k == 0 then
    return meta .. ':b'
  end
  return meta .. ':b' .. k
end

-- Whether every chunk of a list of `byte_len` bytes cut every `cs` bytes
-- exists (one call). The allocation path checks only that: it writes no
-- bytes, and the paths that read or write them check each length
-- (chunks_whole).
local function chunks_present(meta, byte_len, cs)
  local keys = {}
  local at = 0
  while at < byte_len do
    table.insert(keys, chunk_key(meta, #keys))
    at = at + cs
  end
  return redis.call('EXISTS', unpack(keys)) == #keys
end

-- Whether every chunk of a list of `byte_len` bytes cut every `cs` bytes
-- has its length; `key_of(k)` names chunk k. A chunk that is missing
-- (evicted, deleted by hand) or of another length is damage: the list must
-- fail closed rather than be read or written as zeros.
local function chunks_whole(key_of, byte_len, cs)
  local k, at = 0, 0
  while at < byte_len do
    if redis.call('STRLEN', key_of(k)) ~= math.min(cs, byte_len - at) then
      return false
    end
    k, at = k + 1, at + cs
  end
  return true
end

-- Change times. A list's change times (<meta>:c) are one hash field per
-- bucket of indexes (layout.rs), whose value is the bucket's records sorted
-- by offset, 6 bytes each: offset in the bucket (u16) and time (u32),
-- big-endian.

-- The position (1-based) in bucket value `v` of the first record whose
-- offset is not below `slot`, and whether it is `slot`'s.
local function time_search(v, slot)
  local lo, hi = 0, #v / 6
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if struct.unpack('>I2', v, mid * 6 + 1) < slot then
      lo = mid + 1
    else
      hi = mid
    end
  end
  local pos = lo * 6 + 1
  return pos, lo < #v / 6 and struct.unpack('>I2', v, pos) == slot
end

-- Bucket value `v` with the time of `slot` set to `at`.
local function time_put(v, slot, at)
  local pos, found = time_search(v, slot)
  local rest = found and pos + 6 or pos
  return string.sub(v, 1, pos - 1) .. struct.pack('>I2I4', slot, at) .. string.sub(v, rest)
end

-- Commands with many arguments.

local CALL_ARGS = 4000     -- arguments per command at most (Lua's unpack
                           -- stops at ~8000)

-- Calls `cmd key args...` with `args` cut into calls of whole groups of
-- `per` arguments (none when `args` is empty); the array replies,
-- concatenated.
local function call_chunked(cmd, key, args, per)
  local out = {}
  local step = math.floor(CALL_ARGS / per) * per
  for i = 1, #args, step do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
    if type(r) == 'table' then
      for j = 1, #r do
        out[#out + 1] = r[j]
      end
    end
  end
  return out
end
