-- Sets one entry of a list, atomically with its checks, its idempotency
-- record, its timestamp and the list's version. All keys share the owning
-- client's hash tag.
--
-- KEYS[1] list metadata (hash), KEYS[2] list bytes (string),
-- KEYS[3] per-entry change times (hash), KEYS[4] idempotency record (string)
-- ARGV[1] client asking          ARGV[2] allocation number n of the entry
-- ARGV[3] BITFIELD type ('u2')   ARGV[4] BITFIELD bit offset of the entry
-- ARGV[5] target value           ARGV[6] now (unix s)
-- ARGV[7] entry index            ARGV[8] rule per current value 0..3:
--   'U' unchanged, 'C' change, 'N' not allowed, 'W' a change to a value
--   the list's width cannot hold (computed by Rust from the one status
--   rule, so the rule lives in one place)
-- ARGV[9] request digest (32 bytes) ARGV[10] record expiry (unix s)
-- ARGV[11] record TTL (s)        ARGV[12] the list's byte length
--
-- The record (see allocate.lua) is `<digest>C:<d|a>:<at>:<expiry>`: d for a
-- change made, a for "already had that status", at its time (empty: none).
-- Only those two outcomes are recorded; refusals change nothing.
--
-- Returns {'replayed', 'd'|'a', at|''}, {'changed'}, {'notfound'},
-- {'notyours'}, {'never'}, {'damaged'}, {'already', current, at|nil},
-- {'notallowed', current}, {'toowide'} or {'done', previous, version}.

local now = tonumber(ARGV[6])
local raw = redis.call('GET', KEYS[4])
if raw then
  local expiry = tonumber(string.match(raw, ':(%d+)$'))
  if expiry and now < expiry then
    if string.sub(raw, 1, 32) ~= ARGV[9] then
      return {'changed'}
    end
    local kind, at = string.match(string.sub(raw, 33), '^C:([da]):(%d*):%d+$')
    if not kind then
      return {'changed'}
    end
    return {'replayed', kind, at}
  end
end

local function record(kind, at)
  redis.call('SET', KEYS[4], ARGV[9] .. 'C:' .. kind .. ':' .. (at or '') .. ':' .. ARGV[10],
    'EX', ARGV[11])
end

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
if redis.call('STRLEN', KEYS[2]) ~= tonumber(ARGV[12]) then
  return {'damaged'}
end
local cur = redis.call('BITFIELD', KEYS[2], 'GET', ARGV[3], ARGV[4])[1]
local rule = string.sub(ARGV[8], cur + 1, cur + 1)
if rule == 'U' then
  local at = redis.call('HGET', KEYS[3], ARGV[7])
  record('a', at)
  return {'already', cur, at}
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
record('d', ARGV[6])
return {'done', cur, v}
