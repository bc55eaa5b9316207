-- Bind slots of SMPP providers, one named statement per block, loaded once by smpp_slots.py.
--
-- A slot is a session advisory lock, (hashtext('smpp bind ' || provider), slot number), held on a
-- connection of its own for as long as the process is bound: the server releases it the moment
-- that connection ends, a killed process's included.

-- name: take_slot
-- The first free slot, or no row. generate_series yields in order and LIMIT stops the scan at the
-- first lock taken, so no other slot is locked on the way (no ORDER BY: sorting would try them all).
SELECT slot FROM generate_series(0, %(slots)s - 1) AS slot
WHERE pg_try_advisory_lock(hashtext('smpp bind ' || %(provider)s), slot)
LIMIT 1

-- name: give_back_slot
SELECT pg_advisory_unlock(hashtext('smpp bind ' || %(provider)s), %(slot)s)

-- name: slots_held
-- How many of the provider's slots some process holds now (for operators and tests).
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted
  AND classid = hashtext('smpp bind ' || %(provider)s)::oid AND objsubid = 2

-- name: still_connected
SELECT 1
