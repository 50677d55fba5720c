-- Marks an idempotency record done, if it still exists (it may have expired,
-- which is harmless: there is nothing left to answer from).
-- KEYS[1] idempotency record (hash)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 's', 'done')
  return 1
end
return 0
