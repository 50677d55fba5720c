-- Sets one entry of a list, atomically with its checks, its idempotency
-- record, its timestamp and the list's version. All keys share the owning
-- client's hash tag.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `SetStatusArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- The record (see allocate.lua) is `<digest>C:<d|a>:<at>:<expiry>`: d for a
-- change made, a for "already had that status", at its time (empty: none).
-- Only those two outcomes are recorded; refusals change nothing.
--
-- Returns {'replayed', 'd'|'a', at|''}, {'changed'}, {'notfound'},
-- {'notyours'}, {'never'}, {'damaged'}, {'already', current, at|nil},
-- {'notallowed', current}, {'toowide'} or {'done', previous, version}.

local meta_key = KEYS[1]      -- list metadata (hash)
local bytes_key = KEYS[2]     -- list bytes (string)
local times_key = KEYS[3]     -- per-entry change times (hash)
local record_key = KEYS[4]    -- idempotency record (string)
local client = ARGV[1]        -- the client asking
local n = ARGV[2]             -- allocation number of the entry
local field_type = ARGV[3]    -- BITFIELD type ('u2')
local offset = ARGV[4]        -- BITFIELD bit offset of the entry
local value = ARGV[5]         -- target value
local now = ARGV[6]           -- unix s
local idx = ARGV[7]           -- entry index
-- One rule letter per current value 0..3: 'U' unchanged, 'C' change,
-- 'N' not allowed, 'W' a change to a value the list's width cannot hold.
-- Encoded by scripts.rs from the one status rule in Rust, so the rule
-- lives in one place; other values get '' and so are not allowed.
local rules = ARGV[8]
local digest = ARGV[9]        -- request digest (32 bytes)
local record_expiry = ARGV[10] -- unix s
local record_ttl = ARGV[11]   -- s
local byte_len = ARGV[12]     -- the list's byte length
-- The change channel (empty: announce nothing) and the list's id, its
-- message. Published here, after the version bump, so that a message exists
-- if and only if a change was applied, and replicas that hear it find the
-- new version.
local channel = ARGV[13]
local list_id = ARGV[14]

local raw = redis.call('GET', record_key)
if raw then
  local expiry = tonumber(string.match(raw, ':(%d+)$'))
  if expiry and tonumber(now) < expiry then
    if string.sub(raw, 1, 32) ~= digest then
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
  redis.call('SET', record_key, digest .. 'C:' .. kind .. ':' .. (at or '') .. ':' .. record_expiry,
    'EX', record_ttl)
end

local m = redis.call('HMGET', meta_key, 'owner', 'n')
if not m[1] then
  return {'notfound'}
end
if m[1] ~= client then
  return {'notyours'}
end
if tonumber(n) >= tonumber(m[2]) then
  return {'never'}
end
if redis.call('STRLEN', bytes_key) ~= tonumber(byte_len) then
  return {'damaged'}
end
local cur = redis.call('BITFIELD', bytes_key, 'GET', field_type, offset)[1]
local rule = string.sub(rules, cur + 1, cur + 1)
if rule == 'U' then
  local at = redis.call('HGET', times_key, idx)
  record('a', at)
  return {'already', cur, at}
end
if rule == 'W' then
  return {'toowide'}
end
if rule ~= 'C' then
  return {'notallowed', cur}
end
redis.call('BITFIELD', bytes_key, 'SET', field_type, offset, value)
redis.call('HSET', times_key, idx, now)
local v = redis.call('HINCRBY', meta_key, 'v', 1)
record('d', now)
if channel ~= '' then
  redis.call('PUBLISH', channel, list_id)
end
return {'done', cur, v}
