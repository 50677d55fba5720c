-- One page of an entry space's listing (`GET /entries`), from one
-- consistent snapshot: the entries whose status is in `mask`, within the
-- seq range of one list (`list_id`), bound to `ref`, and updated within
-- [since, upto], ordered by (updated time, seq) in `order`; the page is
-- [offset, offset + limit) of them. Writes nothing. Runs after records.lua
-- and space.lua (the space's keys). All keys share the client's hash tag.
--
-- The page algorithm is `domain::entries::cut` and `merge`, which this
-- mirrors step by step. The matching entries are two sources, each sorted
-- by key:
--   U: entries that never changed (VALID, key (created, seq), rising with
--      seq), when VALID is in the mask: the seqs of a window [ulo, uhi) (the
--      space or the list, narrowed to the seqs created within the time
--      window by binary search over the log) not in `x`. Rank r is found by
--      binary search on "unchanged seqs in [lo, q)" = (q - lo) - ZCOUNT x.
--   Z: changed entries whose status is in the mask and whose time is in
--      the window: a rank range of `z<mask>` (for a list, its changed
--      entries, read from `x` in its seq range and scored by `z<mask>`).
-- `cut` asks each for O(log) keys, so a page at any depth costs no walk of
-- what precedes it. With a ref, its entries (few) are read whole, filtered,
-- sorted and sliced.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `ListEntriesArgs` in scripts.rs feeds them in this
-- order (a unit test holds the two together).
--
-- Returns {total, items...}, 8 values per item: seq, list id, allocation
-- number in the list, raw status value, created, updated, status expiry,
-- ref ('' for none).

local state_key = KEYS[1]      -- the space's state (hash: n, t)
local declared_keys = {unpack(KEYS, 2)} -- every other key it may touch (see declare in records.lua)
local space = ARGV[1]          -- the entry space's prefix
local mask = tonumber(ARGV[2]) -- the statuses listed: 1 VALID, 2 INVALID, 4 SUSPENDED
local ref = ARGV[3]            -- only entries bound to this ref ('' any)
local list_id = ARGV[4]        -- only entries of this list ('' any)
local list_base = ARGV[5]      -- its base seq (with list_id)
local since = ARGV[6]          -- only entries updated at or after this ('' any)
local upto = ARGV[7]           -- only entries updated at or before this ('' any)
local order = ARGV[8]          -- 'asc' or 'desc'
local offset = tonumber(ARGV[9]) -- matching entries before the page
local limit = tonumber(ARGV[10]) -- entries on the page at most

local desc = order == 'desc'
since = since ~= '' and tonumber(since) or nil
upto = upto ~= '' and tonumber(upto) or nil
local space_n = tonumber(redis.call('HGET', state_key, 'n')) or 0
local log, reg = log_of(space), registry_of(space)
local xkey = space .. 'x'

-- True when key (at, as) is listed before key (bt, bs).
local function before(at, as, bt, bs)
  if at ~= bt then
    if desc then
      return at > bt
    end
    return at < bt
  end
  if desc then
    return as > bs
  end
  return as < bs
end

-- The seqs of the query: the space's, or the list's.
local lo, hi = 0, space_n
if list_id ~= '' then
  local base = tonumber(list_base)
  local k = base and last_le(reg, 1, base) or -1
  if k < 0 or record_at(reg, k)[1] ~= base
    or string.format('%012X', record_at(reg, k)[2]) ~= list_id then
    return {0}
  end
  lo = base
  if k + 1 < reg.count then
    hi = record_at(reg, k + 1)[1]
  end
end

local function log_record(seq)
  local k = last_le(log, 1, seq)
  if k < 0 then
    error('a seq before the issuance log')
  end
  return record_at(log, k), k
end

-- The ref texts met, by offset + 1 in rb.
local texts = {}
local bindings
-- The ref bound to log record k, or ''.
local function record_ref(k)
  bindings = bindings or bindings_of(space)
  return ref_of_record(space, bindings, k, texts)
end

local out = {0}
local function emit(seq, value, updated, ref_text)
  local r, k = log_record(seq)
  local j = last_le(reg, 1, seq)
  if j < 0 then
    error('a seq before the list registry')
  end
  local g = record_at(reg, j)
  local m = #out
  out[m + 1], out[m + 2], out[m + 3], out[m + 4] = seq, string.format('%012X', g[2]), seq - g[1], value
  out[m + 5], out[m + 6], out[m + 7], out[m + 8] = r[3], updated or r[3], r[4], ref_text or record_ref(k)
end

local function in_window(t)
  return (not since or t >= since) and (not upto or t <= upto)
end

if ref ~= '' then
  -- The ref's entries, read whole.
  local _, last = ref_index(space, ref)
  if not last then
    return {0}
  end
  local seqs, created = {}, {}
  for _, k in ipairs(ref_records(bindings_of(space), last)) do
    if k >= log.count then
      error('a ref binds a record outside the issuance log')
    end
    local r = record_at(log, k)
    for seq = math.max(r[1], lo), math.min(r[1] + r[2], hi) - 1 do
      local m = #seqs + 1
      seqs[m], created[m] = seq, r[3]
    end
  end
  local members = {}
  for i, seq in ipairs(seqs) do
    members[i] = seq_member(seq)
  end
  local in_x = call_chunked('ZMSCORE', xkey, members, 1)
  local changed = {}
  for i = 1, #seqs do
    if in_x[i] then
      changed[#changed + 1] = members[i]
    end
  end
  local by_status = {}
  for value, b in pairs({[0] = 1, [1] = 2, [2] = 4}) do
    by_status[value] = call_chunked('ZMSCORE', space .. 'z' .. b, changed, 1)
  end
  local hits = {}
  local c = 0
  for i, seq in ipairs(seqs) do
    local value, updated
    if in_x[i] then
      c = c + 1
      for v = 0, 2 do
        if by_status[v][c] then
          value, updated = v, tonumber(by_status[v][c])
        end
      end
    else
      value, updated = 0, created[i]
    end
    if value and bit.band(mask, status_bit(value)) ~= 0 and in_window(updated) then
      hits[#hits + 1] = {updated, seq, value}
    end
  end
  table.sort(hits, function(a, b) return before(a[1], a[2], b[1], b[2]) end)
  for i = offset + 1, math.min(offset + limit, #hits) do
    emit(hits[i][2], hits[i][3], hits[i][1], ref)
  end
  out[1] = #hits
  return out
end

-- U: the unchanged seqs of [ulo, uhi).
local ulo, uhi, ulen, uchanged = lo, lo, 0, 0
if bit.band(mask, 1) ~= 0 then
  ulo, uhi = lo, hi
  if since then
    local k = first_ge(log, 3, since)
    ulo = math.max(ulo, k < log.count and record_at(log, k)[1] or space_n)
  end
  if upto then
    local k = first_ge(log, 3, upto + 1)
    uhi = math.min(uhi, k < log.count and record_at(log, k)[1] or space_n)
  end
  if uhi < ulo then
    uhi = ulo
  end
  if uhi > ulo then
    uchanged = redis.call('ZCOUNT', xkey, ulo, uhi - 1)
  end
  ulen = uhi - ulo - uchanged
end

local function changed_in(a, b)
  if b <= a then
    return 0
  end
  return redis.call('ZCOUNT', xkey, a, b - 1)
end

-- The seq of U's entry at rank r (in the query's order).
local useq_at = {}
local function u_seq(r)
  local q = useq_at[r]
  if q then
    return q
  end
  if desc then
    -- The largest q with r + 1 unchanged seqs in [q, uhi).
    local a, b = math.max(ulo, uhi - 1 - r - uchanged), uhi - 1 - r
    while a < b do
      local mid = math.floor((a + b + 1) / 2)
      if (uhi - mid) - changed_in(mid, uhi) >= r + 1 then
        a = mid
      else
        b = mid - 1
      end
    end
    q = a
  else
    -- The smallest q with r + 1 unchanged seqs in [ulo, q].
    local a, b = ulo + r, math.min(uhi - 1, ulo + r + uchanged)
    while a < b do
      local mid = math.floor((a + b) / 2)
      if (mid + 1 - ulo) - changed_in(ulo, mid + 1) >= r + 1 then
        b = mid
      else
        a = mid + 1
      end
    end
    q = a
  end
  useq_at[r] = q
  return q
end

local function u_key(r)
  local seq = u_seq(r)
  return log_record(seq)[3], seq
end

-- Up to `want` unchanged seqs from q (itself unchanged) on, in order,
-- skipping the changed ones (read in growing batches).
local function u_walk(q, want)
  local seqs, batch, s = {}, want + 16, q
  while #seqs < want do
    local changed
    if desc then
      changed = redis.call('ZRANGE', xkey, s, ulo, 'BYSCORE', 'REV', 'LIMIT', 0, batch)
    else
      changed = redis.call('ZRANGE', xkey, s, uhi - 1, 'BYSCORE', 'LIMIT', 0, batch)
    end
    for _, m in ipairs(changed) do
      local c = member_seq(m)
      if desc then
        while s > c and #seqs < want do
          seqs[#seqs + 1] = s
          s = s - 1
        end
        s = c - 1
      else
        while s < c and #seqs < want do
          seqs[#seqs + 1] = s
          s = s + 1
        end
        s = c + 1
      end
      if #seqs >= want then
        return seqs
      end
    end
    if #changed < batch then
      -- No changed seq beyond these: the rest of the window is unchanged.
      while #seqs < want and ((desc and s >= ulo) or (not desc and s < uhi)) do
        seqs[#seqs + 1] = s
        s = desc and s - 1 or s + 1
      end
      return seqs
    end
    batch = batch * 2
  end
  return seqs
end

-- Z: {updated, seq} by rank, and pages of them.
local zkey = space .. 'z' .. mask
local zlen, z_key, z_page
if list_id == '' then
  local zlo = since and redis.call('ZCOUNT', zkey, '-inf', '(' .. since) or 0
  local zhi = upto and redis.call('ZCOUNT', zkey, '-inf', upto) or redis.call('ZCARD', zkey)
  if zhi < zlo then
    zhi = zlo
  end
  zlen = zhi - zlo
  -- The ascending index of rank r.
  local function zindex(r)
    if desc then
      return zhi - 1 - r
    end
    return zlo + r
  end
  z_key = function(r)
    local got = redis.call('ZRANGE', zkey, zindex(r), zindex(r), 'WITHSCORES')
    return tonumber(got[2]), member_seq(got[1])
  end
  z_page = function(j, count)
    local page = {}
    if count <= 0 then
      return page
    end
    local a, b = zindex(j), zindex(j + count - 1)
    if desc then
      a, b = b, a
    end
    local got = redis.call('ZRANGE', zkey, a, b, 'WITHSCORES')
    for p = 1, #got, 2 do
      page[#page + 1] = {tonumber(got[p + 1]), member_seq(got[p])}
    end
    if desc then
      local n = #page
      for p = 1, math.floor(n / 2) do
        page[p], page[n + 1 - p] = page[n + 1 - p], page[p]
      end
    end
    return page
  end
else
  -- The list's changed entries, scored by z<mask> (absent: another status).
  local members = {}
  if hi > lo then
    members = redis.call('ZRANGE', xkey, lo, hi - 1, 'BYSCORE')
  end
  local scores = call_chunked('ZMSCORE', zkey, members, 1)
  local zs = {}
  for i, m in ipairs(members) do
    local t = scores[i] and tonumber(scores[i])
    if t and in_window(t) then
      zs[#zs + 1] = {t, member_seq(m)}
    end
  end
  table.sort(zs, function(a, b) return before(a[1], a[2], b[1], b[2]) end)
  zlen = #zs
  z_key = function(r)
    return zs[r + 1][1], zs[r + 1][2]
  end
  z_page = function(j, count)
    local page = {}
    for p = j + 1, j + count do
      page[#page + 1] = zs[p]
    end
    return page
  end
end

-- The raw status of a changed entry listed from z<mask>.
local bits_of_mask = {}
for _, b in ipairs({1, 2, 4}) do
  if bit.band(mask, b) ~= 0 then
    bits_of_mask[#bits_of_mask + 1] = b
  end
end
local value_of_bit = {[1] = 0, [2] = 1, [4] = 2}
local function z_value(seq)
  local m = seq_member(seq)
  for i, b in ipairs(bits_of_mask) do
    if i == #bits_of_mask or redis.call('ZSCORE', space .. 'z' .. b, m) then
      return value_of_bit[b]
    end
  end
end

-- domain::entries::cut: how many of the first `offset` come from U (i)
-- and from Z (j).
local total = ulen + zlen
local off = math.min(offset, total)
local clo, chi = math.max(off - zlen, 0), math.min(off, ulen)
while clo < chi do
  local mid = clo + math.floor((chi - clo) / 2)
  local zt, zseq = z_key(off - mid - 1)
  local ut, useq = u_key(mid)
  if before(zt, zseq, ut, useq) then
    chi = mid
  else
    clo = mid + 1
  end
end
local i, j = clo, off - clo

-- domain::entries::merge of the two from there.
local useqs = {}
if ulen - i > 0 then
  useqs = u_walk(u_seq(i), math.min(limit, ulen - i))
end
local zpage = z_page(j, math.min(limit, zlen - j))
local ua, za, taken = 1, 1, 0
while taken < limit do
  local take_u
  if ua <= #useqs and za <= #zpage then
    take_u = before(log_record(useqs[ua])[3], useqs[ua], zpage[za][1], zpage[za][2])
  elseif ua <= #useqs then
    take_u = true
  elseif za <= #zpage then
    take_u = false
  else
    break
  end
  if take_u then
    emit(useqs[ua], 0, nil, nil)
    ua = ua + 1
  else
    emit(zpage[za][2], z_value(zpage[za][2]), zpage[za][1], nil)
    za = za + 1
  end
  taken = taken + 1
end
out[1] = total
return out
