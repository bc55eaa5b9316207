-- name: record_failure
-- One more failure for this address: counted in its current window, or the first of a new one.
-- Returns the failures of the window and the seconds left in it.
INSERT INTO sign_in_failures AS f (address, window_started_at, failures)
VALUES (%(address)s, now(), 1)
ON CONFLICT (address) DO UPDATE SET
    failures = CASE WHEN f.window_started_at > now() - make_interval(secs => %(window_s)s)
                    THEN f.failures + 1 ELSE 1 END,
    window_started_at = CASE WHEN f.window_started_at > now() - make_interval(secs => %(window_s)s)
                             THEN f.window_started_at ELSE now() END
RETURNING failures,
    GREATEST(0, EXTRACT(EPOCH FROM window_started_at + make_interval(secs => %(window_s)s) - now()))::float8 AS seconds_left

-- name: failures_now
-- The failures of this address's current window (none once it has passed), and the seconds left in it.
SELECT failures,
    GREATEST(0, EXTRACT(EPOCH FROM window_started_at + make_interval(secs => %(window_s)s) - now()))::float8 AS seconds_left
FROM sign_in_failures
WHERE address = %(address)s AND window_started_at > now() - make_interval(secs => %(window_s)s)

-- name: sweep
-- Windows long past: their addresses start afresh anyway.
DELETE FROM sign_in_failures WHERE window_started_at < now() - make_interval(secs => %(window_s)s)
