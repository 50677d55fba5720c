-- A held event's attempt failed and it is given up on
-- (Outbox::dead_letter): it leaves the journal for the dead letters (evx,
-- see events.lua), with its attempts, the time and the error, unless the
-- report is for another attempt than the event's current one (someone else
-- holds it now) or the event is gone: then nothing changes. A dead event no
-- longer holds the later events of its entries back: those are due at
-- once. Runs after events.lua.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `DeadLetterArgs` in scripts.rs feeds them in this
-- order (a unit test holds the two together).
--
-- Returns {1 when the event died else 0, how many held-back events became
-- due}.

local stream = KEYS[1]         -- the journal (stream)
local due_key = KEYS[2]        -- stream id -> due (zset)
local attempts_key = KEYS[3]   -- stream id -> attempts (hash)
local latest_key = KEYS[4]     -- entry -> its latest event (hash)
local dead_key = KEYS[5]       -- event id -> dead letter (hash)
local next_key = KEYS[6]       -- stream id -> the events it holds back (hash)
local sid = ARGV[1]            -- the event's stream id (its lease's handle)
local attempt = tonumber(ARGV[2]) -- the lease's attempt
local dead_at = ARGV[3]        -- unix ms
local error_text = ARGV[4]     -- the last attempt's error

local attempts = redis.call('HGET', attempts_key, sid)
if not attempts or tonumber(attempts) ~= attempt then
  return {0, 0}
end
local f = ev_read(stream, sid)
if not f or not f.i then
  return {0, 0}
end
redis.call('HSET', dead_key, f.i, ev_dead_pack({
  f.k or '', f.f or '', f.t or '', f.e or '', f.r or '', attempts, dead_at, error_text,
}))
ev_remove(stream, due_key, attempts_key, latest_key, sid, f)
return {1, ev_release(due_key, next_key, sid)}
