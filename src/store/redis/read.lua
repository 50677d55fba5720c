-- Reads a list whole, atomically: its metadata fields and its chunks, from
-- one moment. A script rather than MULTI/EXEC: a Redis Cluster redirects a
-- script to the slot's new master after a failover, where a transaction
-- sent to the old one is aborted whole. Runs after records.lua (nothing of
-- it is used but the declared keys). All keys share the list's hash tag.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `ReadArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- Returns {fields, chunks}: the metadata fields' values in order, and each
-- chunk's bytes (nil for a field or chunk that is missing).

local meta_key = KEYS[1]        -- the list's metadata (hash)
local chunk_keys = {unpack(KEYS, 2)} -- its chunks, in order
local fields = {unpack(ARGV, 1)} -- the metadata fields read, ITEM_ARGS values each:
local ITEM_ARGS = 1
-- item_field: a field's name

return {redis.call('HMGET', meta_key, unpack(fields)), redis.call('MGET', unpack(chunk_keys))}
