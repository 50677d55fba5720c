-- An event was delivered (Outbox::delivered): it leaves the outbox, from
-- whichever state, also when its lease had ended and it was handed on (a
-- delivery is believed from anyone); nothing when it is gone already. The
-- events it held back are due at once. Runs after events.lua.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `DeliveredArgs` in scripts.rs feeds them in this
-- order (a unit test holds the two together).
--
-- Returns {1 when the event was in the journal else 0, how many held-back
-- events became due}.

local stream = KEYS[1]         -- the journal (stream)
local due_key = KEYS[2]        -- stream id -> due (zset)
local attempts_key = KEYS[3]   -- stream id -> attempts (hash)
local latest_key = KEYS[4]     -- entry -> its latest event (hash)
local next_key = KEYS[5]       -- stream id -> the events it holds back (hash)
local sid = ARGV[1]            -- the event's stream id (its lease's handle)

local f = ev_read(stream, sid)
ev_remove(stream, due_key, attempts_key, latest_key, sid, f)
return {f and 1 or 0, ev_release(due_key, next_key, sid)}
