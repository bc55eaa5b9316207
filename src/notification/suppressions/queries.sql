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

-- name: opt_outs_between
-- The day's opt-outs, for the daily report: numbers suppressed by a stop word, and consents revoked.
SELECT (SELECT count(*) FROM suppressions
        WHERE reason = 'stop_word' AND created_at >= %(since)s AND created_at < %(until)s) AS stop_words,
       (SELECT count(*) FROM suppressions
        WHERE created_at >= %(since)s AND created_at < %(until)s) AS suppressed,
       (SELECT count(*) FROM clients
        WHERE consent_revoked_at >= %(since)s AND consent_revoked_at < %(until)s) AS consents_revoked
