-- The SQL of audiences, facets and operator code names, loaded once by queries.py
-- (notation: notification.lib.sql).

-- name: facets
-- A few rows per value (one per shard a writer used); values no client holds any more are left out.
SELECT f.kind, f.value, sum(f.clients)::bigint AS clients, n.name
FROM client_facet_counts f
LEFT JOIN operator_code_names n ON f.kind = 'operator_code' AND n.code = f.value
GROUP BY f.kind, f.value, n.name
HAVING sum(f.clients) > 0
ORDER BY f.kind, f.value

-- name: named_codes_without_clients
SELECT n.code, n.name FROM operator_code_names n
WHERE NOT EXISTS (
    SELECT 1 FROM client_facet_counts f
    WHERE f.kind = 'operator_code' AND f.value = n.code GROUP BY f.value HAVING sum(f.clients) > 0
)
ORDER BY n.code

-- name: keep_filter_of_finished
-- A finished mailing keeps the filter it was last planned with, so that a later retry plans the
-- same clients rather than everyone.
UPDATE mailings SET audience_id = NULL, filter_operator_codes = %(operator_codes)s, filter_tags = %(tags)s,
    filter_attributes = %(attributes)s
WHERE audience_id = %(audience_id)s
