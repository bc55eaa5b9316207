-- The provider rate budget's SQL, one named statement per block, loaded once by queries.py.
-- Each provider has its own row, keyed by its name: one provider's limit never spends another's.

-- name: meter_session
SET synchronous_commit TO off

-- name: ensure_budget
-- A provider's row exists from its first use on: the takes below only ever update it.
INSERT INTO provider_rate_budget (provider) VALUES (%(provider)s) ON CONFLICT (provider) DO NOTHING

-- name: take
UPDATE provider_rate_budget
SET tokens = least(0, tokens + %(rate)s * greatest(0, extract(epoch FROM clock_timestamp() - refilled_at)))
             - %(take)s,
    refilled_at = greatest(refilled_at, clock_timestamp())
WHERE provider = %(provider)s
RETURNING tokens, greatest(0, extract(epoch FROM blocked_until - clock_timestamp()))::float8 AS hold_s

-- name: hold
UPDATE provider_rate_budget
SET blocked_until = greatest(blocked_until, clock_timestamp() + make_interval(secs => %(hold_s)s))
WHERE provider = %(provider)s

-- name: read_hold
SELECT greatest(0, extract(epoch FROM blocked_until - clock_timestamp()))::float8 AS hold_s
FROM provider_rate_budget WHERE provider = %(provider)s
