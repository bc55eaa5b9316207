-- Retention's marks, loaded once by retention.py (notation: notification.lib.sql). The deletion
-- of the messages themselves is a change of their state: messages/state.sql, purge_batch.

-- name: mark_ended
UPDATE mailings g SET messages_purged_at = now()
WHERE g.end_at < now() - make_interval(days => %(days)s) AND g.messages_purged_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.status = {status.pending})

-- name: purging
SELECT g.id FROM mailings g
WHERE g.messages_purged_at IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id)
ORDER BY g.id
