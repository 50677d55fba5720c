-- Claims a single-use jti (a `GET /entries` JWT's): when a live record of
-- any kind exists for the client's jti (an issue, a change, a change by
-- ref, an earlier claim, or a record of an earlier version), the jti is
-- used; otherwise an 'L' record (see records.lua) is written until
-- `record_end`. Runs after records.lua. All keys share the client's hash
-- tag.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `ClaimArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- Returns {'used'} or {'fresh'}.

local legacy_record_key = KEYS[1] -- the jti's record as earlier versions kept it
local declared_keys = {unpack(KEYS, 2)} -- every other key it may touch (see declare in records.lua)
local client_prefix = ARGV[1]  -- `<prefix>{<client>}:`, where the client's records are
local record_field = ARGV[2]   -- the jti's record field (20 bytes, see records.lua)
local digest = ARGV[3]         -- request digest (32 bytes)
local now = tonumber(ARGV[4])  -- unix s
local record_end = ARGV[5]     -- unix s, exclusive

local state = rec_state(client_prefix)
local stale = rec_check(client_prefix, state, {record_field})
if stale then
  return stale
end
local rec, where = rec_lookup(client_prefix, state, record_field, legacy_record_key, digest, now)
if rec then
  return {'used'}
end
rec_put(client_prefix, state, where,
  struct.pack(CLAIM_RECORD, 'L', record_end, string.sub(digest, 1, 8)),
  record_end, now)
return {'fresh'}
