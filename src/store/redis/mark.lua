-- Marks a jti with its request in the jti's own shard of a client spread
-- over shards, when the request's work is done in another shard (a list's,
-- a ref's): a changed request (the same jti, another digest) finds the mark
-- and is refused even when its work would land in yet another shard, while
-- a replay (the same digest) passes. An 'M' record (see records.lua) is
-- written until `record_end`, unless a live record of the same request is
-- there already. Runs after records.lua. All keys share the shard's hash
-- tag.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `MarkArgs` in scripts.rs feeds them in this order
-- (the same as `claim.lua`; a unit test holds the two together).
--
-- Returns {'changed'} or {'marked'}.

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
if rec == 'changed' then
  return {'changed'}
end
if not rec then
  rec_put(client_prefix, state, where,
    struct.pack(CLAIM_RECORD, 'M', record_end, string.sub(digest, 1, 8)),
    record_end, now)
end
return {'marked'}
