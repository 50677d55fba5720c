-- Sets one entry of a list, atomically with its checks, its timestamp and
-- the list's version. All keys share the owning client's hash tag.
--
-- KEYS[1] list metadata (hash), KEYS[2] list bytes (string),
-- KEYS[3] per-entry change times (hash)
-- ARGV[1] client asking          ARGV[2] allocation number n of the entry
-- ARGV[3] BITFIELD type ('u2')   ARGV[4] BITFIELD bit offset of the entry
-- ARGV[5] target value           ARGV[6] now (unix s)
-- ARGV[7] entry index            ARGV[8] rule per current value 0..3:
--   'U' unchanged, 'C' change, 'N' not allowed, 'W' a change to a value
--   the list's width cannot hold (computed by Rust from
--   Status::transition_to, so the rule lives in one place)
--
-- Returns {'notfound'}, {'notyours'}, {'never'}, {'already', current, at|nil},
-- {'notallowed', current}, {'toowide'} or {'done', previous, version}.

local m = redis.call('HMGET', KEYS[1], 'owner', 'n')
if not m[1] then
  return {'notfound'}
end
if m[1] ~= ARGV[1] then
  return {'notyours'}
end
if tonumber(ARGV[2]) >= tonumber(m[2]) then
  return {'never'}
end
local cur = redis.call('BITFIELD', KEYS[2], 'GET', ARGV[3], ARGV[4])[1]
local rule = string.sub(ARGV[8], cur + 1, cur + 1)
if rule == 'U' then
  return {'already', cur, redis.call('HGET', KEYS[3], ARGV[7])}
end
if rule == 'W' then
  return {'toowide'}
end
if rule ~= 'C' then
  return {'notallowed', cur}
end
redis.call('BITFIELD', KEYS[2], 'SET', ARGV[3], ARGV[4], ARGV[5])
redis.call('HSET', KEYS[3], ARGV[7], ARGV[6])
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
return {'done', cur, v}
