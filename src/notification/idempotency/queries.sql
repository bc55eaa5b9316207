-- The Idempotency-Key store, loaded once by store.py (notation: notification.lib.sql).

-- name: take
-- A key older than the retention is free again: taken over as if new.
INSERT INTO idempotency_keys (route, key, request_digest) VALUES (%(route)s, %(key)s, %(digest)s)
ON CONFLICT (route, key) DO UPDATE
SET request_digest = excluded.request_digest, status_code = NULL, response = NULL, created_at = now()
WHERE idempotency_keys.created_at < now() - make_interval(hours => %(kept_hours)s)
RETURNING 1

-- name: read
SELECT request_digest, status_code, response FROM idempotency_keys WHERE route = %(route)s AND key = %(key)s

-- name: answer
UPDATE idempotency_keys SET status_code = %(status_code)s, response = %(response)s
WHERE route = %(route)s AND key = %(key)s

-- name: forget_expired
DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => %(kept_hours)s)
