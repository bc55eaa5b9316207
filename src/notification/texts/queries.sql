-- Texts' reads, loaded once by service.py (notation: notification.lib.sql).

-- name: known_attribute_names
-- Which of a text's names some client has (had) as an attribute: one probe of the primary key each.
SELECT name FROM client_attribute_names WHERE name = ANY(%(names)s)
