-- The client directory's SQL, loaded once by queries.py (notation: notification.lib.sql).

-- name: audience_by_operator_code
-- A mailing's filter, one fragment per list: an empty list filters nothing, so it adds no
-- condition at all (queries.audience_* decide which fragments apply). Columns are unqualified:
-- the fragment stands in a query over clients alone, or in a subquery whose innermost table is
-- clients. The planner reads `= ANY` of the array as it reads `IN (...)`.
operator_code = ANY(%(operator_codes)s)

-- name: audience_by_tag
tag = ANY(%(tags)s)

-- name: audience_by_attributes
-- Containment, which the GIN index ix_clients_attributes (jsonb_path_ops) answers. The fragment
-- applies only with attributes given, so a match has some: saying so lets the planner use the
-- index, which is partial over the clients with attributes.
(attributes @> %(attributes)s::jsonb AND attributes <> '{}'::jsonb)

-- name: present_values
-- The distinct values of an indexed column, one index probe each (a loose index scan): the
-- directory may hold a million clients and a few dozen operator codes.
WITH RECURSIVE present(value) AS (
    (SELECT {column} FROM clients ORDER BY {column} LIMIT 1)
    UNION ALL
    SELECT (SELECT c.{column} FROM clients c WHERE c.{column} > present.value ORDER BY c.{column} LIMIT 1)
    FROM present WHERE present.value IS NOT NULL
)
SELECT value FROM present WHERE value IS NOT NULL LIMIT %(limit)s

-- name: imported_rows
-- The rows of an import as one relation, each column an array: one statement inserts them all.
-- Attributes arrive as JSON texts (an array of jsonb does not travel as one parameter).
-- Consent instants arrive as ISO texts too, cast back by the select over this relation.
unnest(%(phone)s, %(operator_code)s, %(tag)s, %(timezone)s, %(attributes)s, %(consent_given_at)s,
       %(consent_source)s, %(consent_revoked_at)s)
    AS unnest_rows(phone, operator_code, tag, timezone, attributes, consent_given_at, consent_source,
                   consent_revoked_at)
