-- Idempotent allocations for a batch of requests of one (client, format),
-- atomically: for each request in turn, check its idempotency record, take
-- `count` values of the current list's counter (and of a new list's for
-- what the current one has no room for) and write the record, all in one
-- step. Because the record is
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
-- Runs after records.lua (records, chunks), space.lua (entry spaces) and
-- events.lua (the outbox).
-- Every key touched starts with the client's prefix `<prefix>{<client>}:`,
-- so all of them hash to the client's slot in Redis Cluster.
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
-- Entries are numbered per entry space (see space.lua): an allocation of
-- `count` takes the seqs from the space's n on, appends one record to the
-- space's issuance log (with its created time, never before the space's
-- latest), binds them to its ref (if any), and writes an 'S' record (first
-- seq, count) from which a replay rebuilds its runs through the registry.
-- A request takes what room the current list has left and the rest from a
-- new list (the candidate), so it spans at most two lists. A list opened
-- before entry spaces existed has no base (`e`): it is never allocated from
-- again (its room counts as 0), so every seq of a space lies in a list
-- whose base is known. The log, ref and space writes are gathered and made
-- once per batch.
--
-- A request with a ref and an event seed that allocates records one
-- entries.issued event listing its entries (events.lua), made with the
-- batch's other writes at the end, after every check and answer, so a
-- script that stops early with an error records none. Replays and
-- refusals record nothing.
--
-- Returns {answers, opened, facts}: one answer per request,
-- {'allocated' | 'replayed', list, first n, count[, list, first n, count]}
-- (the second run when the request spilled into a new list),
-- {'changed'}, {'damaged', list} (a chunk of the current list's bytes is
-- missing: fail closed), {'open'} (a new list is needed and no id is
-- claimed yet, or the claimed one is used already), {'collision'} (the
-- candidate id is taken) or {'pending'} (not looked at: after an open or a
-- collision); opened 1 when the candidate list was opened; facts {list,
-- key, capacity, format, bits, cs, e, ...} of every list answered but
-- known_list.

local current_key = KEYS[1]     -- the current-list pointer (string)
local legacy_keys = {unpack(KEYS, 2)} -- each request's record as earlier versions kept it,
-- then every other key the script may touch (see declare in records.lua)
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
local space = ARGV[12]          -- the entry space's prefix `<client prefix>e:<format>:`
local items = {unpack(ARGV, 13)} -- the requests, ITEM_ARGS values each:
local ITEM_ARGS = 8
-- item_field: the jti's record field (20 bytes, see records.lua)
-- item_digest: request digest (32 bytes)
-- item_now: the request's clock (unix s)
-- item_end: until when its record counts (unix s, exclusive)
-- item_count: how many indexes
-- item_expiry: its statusExpiry (unix s)
-- item_ref: the ref its entries are bound to, or ''
-- item_events: its event's seed, kind and format (see ev_seed), or '' for
--   none (no ref, or a client without a webhook)

local state = rec_state(client_prefix)
do
  local fields = {}
  for i = 1, #items / ITEM_ARGS do
    fields[i] = items[(i - 1) * ITEM_ARGS + 1]
  end
  local stale = rec_check(client_prefix, state, fields)
  if stale then
    return stale
  end
end

-- The current list, read once: its id, metadata key, counter, capacity,
-- latest status expiry, base seq (nil: opened before entry spaces), and
-- whether a chunk of it is missing.
local list = redis.call('GET', current_key)
-- retire_text is retire as given: written back as is, since a number
-- beyond 2^53 would come back from Lua in another notation.
local meta, n, cap, retire, retire_text, damaged, base
if list then
  meta = client_prefix .. 'l:' .. list
  -- The caller declares the list it thinks is current, and its chunks.
  if not DECLARED[meta] then
    return redis.error_reply('STALE current ' .. list)
  end
  local m = redis.call('HMGET', meta, 'n', 'cap', 'retire', 'bits', 'cs', 'e')
  if m[1] then
    n, cap, retire, retire_text = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]) or 0, m[3] or '0'
    base = tonumber(m[6])
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

-- The space: its next seq (the current list's when it is tracked: the two
-- agree) and latest created time, written back once.
local sp = redis.call('HMGET', space .. 's', 'n', 't')
local next_seq, last_created = tonumber(sp[1]) or 0, tonumber(sp[2]) or 0
if list and base then
  next_seq = base + n
end
local space_moved = false
-- What the batch appends to the log, the bindings and the ref texts, and
-- the refs it bound entries to; written once at the end. The lengths are
-- read when first needed.
local log_buf, bind_buf, text_buf = {}, {}, {}
local log_start, bind_count, text_len
local refs = {}
local registry

local function replay_runs(first_seq, count)
  registry = registry or registry_of(space)
  local runs = {}
  if not runs_of(registry, first_seq, count, runs) then
    return nil
  end
  return runs
end

-- The events of the batch's allocations, recorded at the end.
local issued = {}

local opened = 0
local answers = {}
local listed = {}
local done = 0
for i = 1, #items / ITEM_ARGS do
  local at = (i - 1) * ITEM_ARGS
  local field, digest = items[at + 1], items[at + 2]
  local now, record_end = tonumber(items[at + 3]), items[at + 4]
  local count, status_expiry = tonumber(items[at + 5]), tonumber(items[at + 6])
  local ref = items[at + 7]
  local rec, where = rec_lookup(client_prefix, state, field, legacy_keys[i], digest, now)
  if rec == 'changed' or (rec and rec.kind ~= 'I' and rec.kind ~= 'S') then
    answers[i] = {'changed'}
  elseif rec and rec.kind == 'I' then
    answers[i] = {'replayed', rec.list, rec.first, rec.count}
    listed[rec.list] = true
  elseif rec then
    local runs = replay_runs(rec.first_seq, rec.count)
    if not runs or #runs > 6 then
      return redis.error_reply('an issue record names seqs outside the list registry')
    end
    local answer = {'replayed'}
    for k = 1, #runs do
      answer[k + 1] = runs[k]
    end
    answers[i] = answer
    for k = 1, #runs, 3 do
      listed[runs[k]] = true
    end
  else
    -- A list opened before entry spaces has no room: it is left as it is.
    local room = (list and base) and cap - n or 0
    local take = math.min(count, room)
    local rest = count - take
    if take > 0 and damaged then
      answers[i] = {'damaged', list}
    else
      local new_meta
      if rest > 0 then
        if claimed ~= '1' or opened == 1 then
          answers[i] = {'open'}
          break
        end
        new_meta = client_prefix .. 'l:' .. candidate_list
        if redis.call('EXISTS', new_meta) == 1 then
          answers[i] = {'collision'}
          break
        end
      end
      local first_seq = next_seq
      local answer = {'allocated'}
      if take > 0 then
        answer[2], answer[3], answer[4] = list, n, take
        n, moved = n + take, true
        if status_expiry > retire then
          retire, retire_text = status_expiry, items[at + 6]
        end
        listed[list] = true
      end
      if rest > 0 then
        write_back()
        list, meta, base = candidate_list, new_meta, first_seq + take
        n, cap, retire, retire_text, damaged = 0, tonumber(new_capacity), 0, '0', false
        redis.call('HSET', meta, 'owner', client, 'fmt', format, 'bits', new_bits,
          'cap', new_capacity, 'n', 0, 'key', candidate_key, 'created', now, 'retire', 0, 'v', 0,
          'cs', new_chunk_bytes, 'e', base)
        -- Each chunk is created at its full length at once: a string grown by
        -- BITFIELD writes gets Redis's greedy preallocation (up to twice the
        -- size), and an exact length lets the allocation fit its size class.
        local k, off = 0, 0
        while off < new_list_bytes do
          redis.call('SETRANGE', chunk_key(meta, k), math.min(new_chunk_bytes, new_list_bytes - off) - 1, '\0')
          k, off = k + 1, off + new_chunk_bytes
        end
        redis.call('SET', current_key, list)
        redis.call('APPEND', space .. 'l', struct.pack(LIST_RECORD, base, tonumber(list, 16)))
        registry = nil
        opened = 1
        local m = #answer
        answer[m + 1], answer[m + 2], answer[m + 3] = list, 0, rest
        n, moved = rest, true
        retire, retire_text = status_expiry, items[at + 6]
        listed[list] = true
      end
      -- The issuance record: created never goes back within the space.
      if now > last_created then
        last_created = now
      end
      next_seq, space_moved = first_seq + count, true
      local r
      if ref ~= '' then
        r = refs[ref]
        if not r then
          local off, last = ref_index(space, ref)
          if not off then
            text_len = text_len or redis.call('STRLEN', space .. 'rb')
            off, last = text_len + 1, 0
            text_buf[#text_buf + 1] = string.char(#ref) .. ref
            text_len = text_len + 1 + #ref
          end
          r = {off = off, last = last}
          refs[ref] = r
        end
        log_start = log_start or math.floor(redis.call('STRLEN', space .. 'g') / LOG_SIZE)
        bind_count = bind_count or math.floor(redis.call('STRLEN', space .. 'rg') / REF_SIZE)
      end
      local seq, left = first_seq, count
      while left > 0 do
        local k = math.min(left, MAX_RUN)
        log_buf[#log_buf + 1] = struct.pack(LOG_RECORD, seq, k, sat32(last_created), sat32(status_expiry))
        if r then
          bind_buf[#bind_buf + 1] = struct.pack(REF_RECORD, log_start + #log_buf - 1, r.off, r.last)
          bind_count = bind_count + 1
          r.last = bind_count
        end
        seq, left = seq + k, left - k
      end
      rec_put(client_prefix, state, where,
        struct.pack(SEQ_RECORD, 'S', record_end, string.sub(digest, 1, 8), first_seq, count),
        record_end, now)
      answers[i] = answer
      local ev = ref ~= '' and ev_seed(items[at + 8])
      if ev then
        local runs = {}
        for k = 2, #answer do
          runs[k - 1] = answer[k]
        end
        issued[#issued + 1] = {id = ev_id(ev, 0), ev = ev, now = now, runs = runs, ref = ref}
      end
    end
  end
  done = i
end
write_back()
if #log_buf > 0 then
  redis.call('APPEND', space .. 'g', table.concat(log_buf))
end
if #bind_buf > 0 then
  redis.call('APPEND', space .. 'rg', table.concat(bind_buf))
end
if #text_buf > 0 then
  redis.call('APPEND', space .. 'rb', table.concat(text_buf))
end
local bound = {}
for ref, r in pairs(refs) do
  bound[#bound + 1] = ref
  bound[#bound + 1] = struct.pack(REF_INDEX, r.off, r.last)
end
if #bound > 0 then
  redis.call('HSET', space .. 'rf', unpack(bound))
end
if space_moved then
  redis.call('HSET', space .. 's', 'n', next_seq, 't', last_created)
end
-- Newly allocated entries have no earlier events to follow.
for _, e in ipairs(issued) do
  ev_record(client_prefix, e.id, e.ev.kind, e.ev.format, e.now, e.runs, e.ref, false)
end
for i = done + 2, #items / ITEM_ARGS do
  answers[i] = {'pending'}
end

local facts = {}
for l in pairs(listed) do
  if l ~= known_list then
    -- Only the lists whose keys the caller declared (the current list and
    -- the candidate): it looks up the others (a replay's) itself.
    local lmeta = client_prefix .. 'l:' .. l
    if DECLARED[lmeta] then
      local m = redis.call('HMGET', lmeta, 'key', 'cap', 'fmt', 'bits', 'cs', 'e')
      for _, v in ipairs({l, m[1] or false, m[2] or false, m[3] or false, m[4] or false, m[5] or false, m[6] or false}) do
        table.insert(facts, v)
      end
    end
  end
end
return {answers, opened, facts}
