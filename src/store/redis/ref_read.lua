-- The first step of a change by ref: what entries the ref holds now, as
-- runs of allocation numbers per list, and the stamp they were read at (the
-- ref's last binding, see space.lua), which ref_change.lua checks so that
-- entries bound in between (a concurrent `/issue` with the ref) are not
-- missed. Writes nothing. Runs after records.lua and space.lua. All keys
-- share the client's hash tag.
--
-- The request's record is looked at first: another request's jti is
-- 'changed' at once, and a replay answers from its record (the runs still
-- name the ref's lists, which the report carries).
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `RefReadArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- Returns {'changed'}, {'notfound'} (no entry of the space is bound to the
-- ref), {'runs', stamp, runs} or {'replayed', stamp, runs, at, changed,
-- skipped, already}, runs being {list, first n, count, ...} in allocation
-- order.

local legacy_record_key = KEYS[1] -- the jti's record as earlier versions kept it
local declared_keys = {unpack(KEYS, 2)} -- every other key it may touch (see declare in records.lua)
local client_prefix = ARGV[1]  -- `<prefix>{<client>}:`, where the client's records are
local space = ARGV[2]          -- the entry space's prefix
local ref = ARGV[3]            -- the ref's text
local record_field = ARGV[4]   -- the jti's record field (20 bytes, see records.lua)
local digest = ARGV[5]         -- request digest (32 bytes)
local now = tonumber(ARGV[6])  -- unix s

local state = rec_state(client_prefix)
local stale = rec_check(client_prefix, state, {record_field})
if stale then
  return stale
end
local rec = rec_lookup(client_prefix, state, record_field, legacy_record_key, digest, now)
if rec == 'changed' or (rec and rec.kind ~= 'R') then
  return {'changed'}
end
local _, last = ref_index(space, ref)
if not last or last == 0 then
  return {'notfound'}
end
local log, reg = log_of(space), registry_of(space)
local runs = {}
for _, k in ipairs(ref_records(bindings_of(space), last)) do
  if k >= log.count or not runs_of(reg, record_at(log, k)[1], record_at(log, k)[2], runs) then
    return redis.error_reply('a ref binds seqs outside the issuance log or the list registry')
  end
end
if rec then
  return {'replayed', last, runs, rec.at, rec.changed, rec.skipped, rec.already}
end
return {'runs', last, runs}
