-- A held event's attempt failed (Outbox::retry): it is scheduled for
-- `retry_at`, unless the report is for another attempt than the event's
-- current one (its lease ended and someone else holds it now) or the event
-- is gone: then nothing changes. Runs after events.lua.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `RetryArgs` in scripts.rs feeds them in this order
-- (a unit test holds the two together).
--
-- Returns 1 when the event was scheduled, else 0.

local due_key = KEYS[1]        -- stream id -> due (zset)
local attempts_key = KEYS[2]   -- stream id -> attempts (hash)
local sid = ARGV[1]            -- the event's stream id (its lease's handle)
local attempt = tonumber(ARGV[2]) -- the lease's attempt
local retry_at = ARGV[3]       -- unix ms

local current = tonumber(redis.call('HGET', attempts_key, sid))
if current ~= attempt or not redis.call('ZSCORE', due_key, sid) then
  return 0
end
redis.call('ZADD', due_key, retry_at, sid)
return 1
