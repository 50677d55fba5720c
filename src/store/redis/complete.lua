-- Marks an idempotency record done, if it still exists (it may have expired,
-- which is harmless: there is nothing left to answer from). The record is
-- `<32-byte digest><state>:...` (see allocate.lua); the state becomes D.
-- KEYS[1] idempotency record (string)
local raw = redis.call('GET', KEYS[1])
if raw and string.len(raw) > 33 then
  redis.call('SET', KEYS[1], string.sub(raw, 1, 32) .. 'D' .. string.sub(raw, 34), 'KEEPTTL')
  return 1
end
return 0
