-- Makes dead events waiting again (Outbox::redeliver): each id that is one
-- of the client's dead letters is appended anew to the journal, as if just
-- recorded (no attempts, no `p`: it neither holds later events of its
-- entries back nor is held back by earlier ones), and its dead letter is
-- dropped. Other ids are ignored. Runs after events.lua.
--
-- The arguments, by name: the declarations below are the only place a
-- position is read, and `RedeliverArgs` in scripts.rs feeds them in this
-- order (a unit test holds the two together).
--
-- Returns the ids redelivered, in the order given.

local stream = KEYS[1]         -- the journal (stream)
local dead_key = KEYS[2]       -- event id -> dead letter (hash)
local ids = ARGV[1]            -- event ids, 16 bytes each, concatenated

local out = {}
for p = 1, #ids - 15, 16 do
  local id = string.sub(ids, p, p + 15)
  local v = redis.call('HGET', dead_key, id)
  local d = v and ev_dead_unpack(v)
  if d and #d >= 5 then
    local fields = {'i', id, 'k', d[1], 'f', d[2], 't', d[3], 'e', d[4]}
    if d[5] ~= '' then
      fields[#fields + 1], fields[#fields + 2] = 'r', d[5]
    end
    redis.call('XADD', stream, '*', unpack(fields))
    redis.call('HDEL', dead_key, id)
    out[#out + 1] = id
  end
end
return out
