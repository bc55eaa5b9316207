-- The suppression list's SQL, loaded once by service.py (notation: notification.lib.sql).

-- name: suppress
-- Numbers already listed keep their first reason and author: the list records when a number was
-- first suppressed, and an import repeated (or an export imported back) changes nothing.
INSERT INTO suppressions (phone, reason, source, created_by)
SELECT phone, reason, source, %(created_by)s
FROM unnest(%(phones)s::text[], %(reasons)s::text[], %(sources)s::text[]) AS new(phone, reason, source)
ON CONFLICT (phone) DO NOTHING
RETURNING phone

-- name: export
SELECT phone, reason, source, created_at, created_by FROM suppressions ORDER BY phone

-- name: opt_outs_of_the_day
-- The day's opt-outs, for the daily report: numbers put on the list (by a stop word, and in all,
-- through ix_suppressions_created_at) and consents revoked (a scan of the clients: once a day).
SELECT count(*) FILTER (WHERE reason = 'stop_word') AS stop_words, count(*) AS suppressed,
       (SELECT count(*) FROM clients
        WHERE consent_revoked_at >= %(day_start)s AND consent_revoked_at < %(day_end)s) AS consents_revoked
FROM suppressions WHERE created_at >= %(day_start)s AND created_at < %(day_end)s
