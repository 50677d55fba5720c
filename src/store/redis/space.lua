-- Entry spaces: a client's entries of one list format, numbered in
-- allocation order by their seq (0, 1, 2, ...), and what the listing, the
-- changes by ref and the change indexes need of them. scripts.rs builds
-- allocate.lua, set_status.lua, ref_read.lua, ref_change.lua and list.lua as
-- records.lua, this prelude, then their own text. Only functions and
-- constants here; neither KEYS nor ARGV is read.
--
-- A space's keys start with its prefix `<client prefix>e:<format>:`
-- (keys.rs), handed to the scripts as `space`:
--   s    hash: n (the next seq), t (the latest created time)
--   g    string: the issuance log, appended by allocate.lua, LOG_SIZE bytes
--        per record, one record per issue (more for a count above
--        MAX_RUN): first seq u48, count u16, created u32, status expiry u32.
--        Sorted by first seq and by created (created never goes back in a
--        space), so both are binary searched.
--   l    string: the list registry, LIST_SIZE bytes per record, appended
--        when a list of the space opens: base seq u48, list id u48. A list
--        holds the seqs from its base up to the next list's base (the space's
--        n for the last one): lists are filled in order.
--   rg   string: ref bindings, REF_SIZE bytes per record, one per log
--        record of an issue with a ref: log record index u32, the ref's text
--        offset + 1 in rb u32, and the index + 1 of the previous binding of
--        the same ref (0: none) u32. Sorted by log record index.
--   rb   string: ref texts, `len u8, bytes`, appended once per ref
--   rf   hash: ref text -> its text offset + 1 in rb u32, its last binding's
--        index + 1 u32 (the stamp a change by ref is checked against)
--   x    zset: the entries that ever changed, score = seq, member = seq
--   z<m> zset for each status mask m = 1..7 (1 VALID, 2 INVALID,
--        4 SUSPENDED): the changed entries whose status now is in m,
--        score = the time of their last change, member = seq
-- A member is the seq as 6 bytes big-endian, so equal scores sort by seq.
-- Entries that never changed are in no zset: they are VALID, and their
-- time is their created time. Times are stored as u32, saturated: the API
-- bounds them far below 2106.

local LOG_RECORD = '>I6I2I4I4'
local LOG_SIZE = 16
local LIST_RECORD = '>I6I6'
local LIST_SIZE = 12
local REF_RECORD = '>I4I4I4'
local REF_SIZE = 12
local REF_INDEX = '>I4I4'
local MAX_RUN = 65535      -- the most entries one log record counts
local U32_MAX = 4294967295

local function sat32(v)
  if v > U32_MAX then
    return U32_MAX
  end
  return v
end

local function seq_member(seq)
  return struct.pack('>I6', seq)
end

local function member_seq(m)
  return (struct.unpack('>I6', m))
end

-- The status mask bit of a raw entry value (0 for values never listed).
local function status_bit(value)
  if value == 0 then
    return 1
  elseif value == 1 then
    return 2
  elseif value == 2 then
    return 4
  end
  return 0
end

-- A string of fixed-size records, read record by record (GETRANGE) and
-- remembered for the rest of the script.
local function records_of(key, size, fmt)
  return {
    key = key,
    size = size,
    fmt = fmt,
    count = math.floor(redis.call('STRLEN', key) / size),
    cache = {},
  }
end

-- Record k (0-based) as a table of its fields.
local function record_at(t, k)
  local r = t.cache[k]
  if not r then
    local at = k * t.size
    r = {struct.unpack(t.fmt, redis.call('GETRANGE', t.key, at, at + t.size - 1))}
    t.cache[k] = r
  end
  return r
end

-- The last record whose field f is at most v (records sorted by f), -1
-- when none is.
local function last_le(t, f, v)
  local lo, hi = 0, t.count
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if record_at(t, mid)[f] <= v then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo - 1
end

-- The first record whose field f is at least v (records sorted by f);
-- t.count when none is.
local function first_ge(t, f, v)
  local lo, hi = 0, t.count
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if record_at(t, mid)[f] < v then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return lo
end

local function log_of(space)
  return records_of(space .. 'g', LOG_SIZE, LOG_RECORD)
end

local function registry_of(space)
  return records_of(space .. 'l', LIST_SIZE, LIST_RECORD)
end

local function bindings_of(space)
  return records_of(space .. 'rg', REF_SIZE, REF_RECORD)
end

-- Appends to `out` the runs {list id, first allocation number, count} of
-- the seqs first .. first + count - 1, through the registry `reg`: one run
-- per list they fall in, a run that continues the last one of `out` joined
-- to it. False when a seq falls in no list (damaged data).
local function runs_of(reg, first, count, out)
  local seq, left = first, count
  while left > 0 do
    local k = last_le(reg, 1, seq)
    if k < 0 then
      return false
    end
    local r = record_at(reg, k)
    local take = left
    if k + 1 < reg.count then
      take = math.min(left, record_at(reg, k + 1)[1] - seq)
    end
    if take <= 0 then
      return false
    end
    local list, n = string.format('%012X', r[2]), seq - r[1]
    local m = #out
    if m >= 3 and out[m - 2] == list and out[m - 1] + out[m] == n then
      out[m] = out[m] + take
    else
      out[m + 1], out[m + 2], out[m + 3] = list, n, take
    end
    seq, left = seq + take, left - take
  end
  return true
end

-- The log record indexes bound to the ref whose last binding is `last`
-- (index + 1), in allocation order, walking its chain back.
local function ref_records(bindings, last)
  local back = {}
  local k = last
  while k > 0 and k <= bindings.count do
    local r = record_at(bindings, k - 1)
    back[#back + 1] = r[1]
    -- A chain only goes back; anything else is damage, not a loop to run.
    if r[3] >= k then
      break
    end
    k = r[3]
  end
  local out = {}
  for i = #back, 1, -1 do
    out[#out + 1] = back[i]
  end
  return out
end

-- The ref's text offset + 1 and last binding + 1, or nil for an unknown ref.
local function ref_index(space, ref)
  local v = redis.call('HGET', space .. 'rf', ref)
  if not v or #v ~= 8 then
    return nil
  end
  return struct.unpack(REF_INDEX, v)
end

-- The text of the ref whose text offset + 1 in rb is `off`, remembered in
-- `texts` (offset + 1 -> text) for the rest of the script.
local function ref_text(space, off, texts)
  local t = texts[off]
  if not t then
    local len = string.byte(redis.call('GETRANGE', space .. 'rb', off - 1, off - 1)) or 0
    t = len > 0 and redis.call('GETRANGE', space .. 'rb', off, off + len - 1) or ''
    texts[off] = t
  end
  return t
end

-- The ref bound to log record k, or '' (`bindings`: bindings_of(space),
-- `texts` as for ref_text).
local function ref_of_record(space, bindings, k, texts)
  local j = last_le(bindings, 1, k)
  if j < 0 or record_at(bindings, j)[1] ~= k then
    return ''
  end
  return ref_text(space, record_at(bindings, j)[2], texts)
end

-- The ref entry `seq` was issued with, or '' (none, or a seq before the
-- issuance log): its log record, then that record's binding, as the
-- listing finds it.
local function ref_of_seq(space, seq)
  local k = last_le(log_of(space), 1, seq)
  if k < 0 then
    return ''
  end
  return ref_of_record(space, bindings_of(space), k, {})
end

-- Records in the change indexes that the entries `seqs` (of a tracked
-- list) changed from raw value `old` to `new` at `now`.
local function index_change(space, seqs, old, new, now)
  local xs, zs, ms = {}, {}, {}
  for i, seq in ipairs(seqs) do
    local m = seq_member(seq)
    xs[2 * i - 1], xs[2 * i] = seq, m
    zs[2 * i - 1], zs[2 * i] = now, m
    ms[i] = m
  end
  call_chunked('ZADD', space .. 'x', xs, 2)
  local old_bit, new_bit = status_bit(old), status_bit(new)
  for mask = 1, 7 do
    if bit.band(mask, new_bit) ~= 0 then
      call_chunked('ZADD', space .. 'z' .. mask, zs, 2)
    elseif bit.band(mask, old_bit) ~= 0 then
      call_chunked('ZREM', space .. 'z' .. mask, ms, 1)
    end
  end
end
