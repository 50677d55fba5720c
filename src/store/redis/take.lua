-- Hands out up to `max` of one client's events to `consumer`, leasing each
-- until now + lease (Outbox::take, one call per client: a call never mixes
-- two clients' keys, which may be in different cluster slots). Runs after
-- events.lua (the outbox's keys and fields). Atomic, so two replicas taking
-- at once never get the same event while its lease runs.
--
-- First the taken events whose due time has passed (leases that ended,
-- retries that are due, events held back earlier), earliest first, then
-- waiting events in record order (XREADGROUP '>'). An event is held back,
-- not handed out, while an event its `p` names is still in the journal
-- (undelivered and not dead): its due becomes now + recheck and its
-- attempts stay as they are. A handed out event gets due = now + lease and
-- one more attempt, and is claimed by `consumer` in the group's pending
-- list (XCLAIM) when it was someone else's. At most SCAN events are looked
-- at per call, which bounds the script's time when many are held back
-- (those move on by `recheck`, so the next call sees others).
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `TakeArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- Returns the events handed out, 8 values each: stream id, attempt, event
-- id (16 bytes), kind code, format, at, entries (packed runs), ref ('' for
-- none).

local stream = KEYS[1]         -- the journal (stream)
local due_key = KEYS[2]        -- stream id -> due, unix ms (zset)
local attempts_key = KEYS[3]   -- stream id -> attempts (hash)
local consumer = ARGV[1]       -- the taker's consumer name
local now = tonumber(ARGV[2])  -- unix ms
local lease = tonumber(ARGV[3]) -- ms
local recheck = tonumber(ARGV[4]) -- ms
local max = tonumber(ARGV[5])  -- events handed out at most

local SCAN = 1024

-- Nothing recorded yet: no key is created for a client without events.
if max <= 0 or redis.call('EXISTS', stream) == 0 then
  return {}
end

local out = {}
local handed, scanned = 0, 0

-- Whether an earlier event of one of its entries is undelivered, not dead.
local function held_back(f)
  if not f.p then
    return false
  end
  for sid in string.gmatch(f.p, '%S+') do
    if #redis.call('XRANGE', stream, sid, sid) > 0 then
      return true
    end
  end
  return false
end

local function hand_out(sid, f)
  local attempt = redis.call('HINCRBY', attempts_key, sid, 1)
  redis.call('ZADD', due_key, now + lease, sid)
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = sid, attempt, f.i or '', f.k or ''
  out[n + 5], out[n + 6], out[n + 7], out[n + 8] = f.f or '', f.t or '', f.e or '', f.r or ''
  handed = handed + 1
end

local function hold_back(sid)
  redis.call('ZADD', due_key, now + recheck, sid)
end

-- Taken events that are due, earliest first.
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', due_key, '-inf', now, 'LIMIT', 0, SCAN)) do
  if handed >= max then
    break
  end
  scanned = scanned + 1
  local f = ev_read(stream, sid)
  if not f then
    -- Gone from the journal without its due time (removed by hand): let
    -- it go.
    redis.call('ZREM', due_key, sid)
    redis.call('HDEL', attempts_key, sid)
  elseif held_back(f) then
    hold_back(sid)
  else
    redis.call('XCLAIM', stream, EV_GROUP, consumer, 0, sid, 'JUSTID')
    hand_out(sid, f)
  end
end

-- Waiting events, in record order. The group is made at the first read
-- (from '0': every event recorded before is waiting), not at every call.
local function read(count)
  local got = redis.pcall('XREADGROUP', 'GROUP', EV_GROUP, consumer, 'COUNT', count,
    'STREAMS', stream, '>')
  if type(got) == 'table' and got.err then
    if not string.find(got.err, 'NOGROUP', 1, true) then
      return redis.error_reply(got.err)
    end
    redis.call('XGROUP', 'CREATE', stream, EV_GROUP, '0')
    got = redis.call('XREADGROUP', 'GROUP', EV_GROUP, consumer, 'COUNT', count,
      'STREAMS', stream, '>')
  end
  -- nil (false) when nothing is waiting.
  if not got or not got[1] then
    return {}
  end
  return got[1][2]
end

while handed < max and scanned < SCAN do
  local entries = read(math.min(max - handed, SCAN - scanned))
  if entries.err then
    return entries
  end
  if #entries == 0 then
    break
  end
  for _, entry in ipairs(entries) do
    scanned = scanned + 1
    local sid, f = entry[1], ev_fields(entry[2])
    if held_back(f) then
      hold_back(sid)
    else
      hand_out(sid, f)
    end
  end
end
return out
