-- The example providers `notification dev` stores on a database that has none, so that a newcomer
-- sees routing work: SMPP for operator codes 900-929 (HTTP when it cannot), HTTP for the rest.

-- name: providers_stored
SELECT count(*) FROM providers

-- name: store_provider
INSERT INTO providers (name, kind, settings, window_size, callback_secret)
VALUES (%(name)s, %(kind)s, %(settings)s, %(window)s, %(callback_secret)s)

-- name: store_route
INSERT INTO provider_routes (position, operator_codes, providers) VALUES (%(position)s, %(operator_codes)s, %(providers)s)
