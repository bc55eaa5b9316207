-- The stored providers and routes as a worker reads them, one named statement per block.

-- name: config_version
SELECT version FROM provider_config_version WHERE id = 1

-- name: stored_providers
-- In the order they were added: with no route matching, the first enabled one takes the message.
SELECT name, kind, settings, secret, rate_limit, concurrency, window_size, binds, enabled
FROM providers ORDER BY id

-- name: stored_routes
SELECT operator_codes, phone_prefixes, providers FROM provider_routes ORDER BY position

-- name: snapshot
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
