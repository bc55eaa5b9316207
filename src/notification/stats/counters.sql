-- The counters' upkeep outside the triggers, loaded once by counters.py (notation:
-- notification.lib.sql). Mailings whose messages retention has started deleting are left out:
-- their counters are final and no longer match what is left of their messages, on purpose.

-- name: counts_differences
WITH counted AS (
    SELECT mailing_id, status, error_kind, sum(messages) AS messages, sum(attempts) AS attempts
    FROM message_counts
    GROUP BY mailing_id, status, error_kind
), stored AS (
    SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, count(*) AS messages,
           sum(attempts) AS attempts
    FROM messages
    GROUP BY mailing_id, status, coalesce(error_kind, '')
)
SELECT mailing_id, status, error_kind,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages,
       coalesce(c.attempts, 0)::bigint AS counted_attempts, coalesce(s.attempts, 0)::bigint AS stored_attempts
FROM counted c FULL JOIN stored s USING (mailing_id, status, error_kind)
WHERE (coalesce(c.messages, 0), coalesce(c.attempts, 0)) <> (coalesce(s.messages, 0), coalesce(s.attempts, 0))
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, status, error_kind

-- name: parts_of_sent
-- The parts a sent message counts: its own, or its mailing's when it was sent before messages kept
-- theirs (migration 0021), as the counting triggers take them.
coalesce(m.parts, g.parts)

-- name: sends_differences
WITH counted AS (
    SELECT mailing_id, minute, sum(sent) AS sent, sum(parts) AS parts, min(first_sent_at) AS first_sent_at,
           max(last_sent_at) AS last_sent_at
    FROM message_sends_per_minute
    GROUP BY mailing_id, minute
    HAVING sum(sent) <> 0 OR sum(parts) <> 0
), stored AS (
    SELECT m.mailing_id, date_trunc('minute', m.sent_at, 'UTC') AS minute, count(*) AS sent,
           sum({parts_of_sent}) AS parts, min(m.sent_at) AS first_sent_at, max(m.sent_at) AS last_sent_at
    FROM messages m JOIN mailings g ON g.id = m.mailing_id
    WHERE m.status = {status.sent} AND m.sent_at IS NOT NULL
    GROUP BY m.mailing_id, date_trunc('minute', m.sent_at, 'UTC')
)
SELECT mailing_id, minute,
       coalesce(c.sent, 0)::bigint AS counted_sent, coalesce(s.sent, 0)::bigint AS stored_sent,
       coalesce(c.parts, 0)::bigint AS counted_parts, coalesce(s.parts, 0)::bigint AS stored_parts,
       c.first_sent_at AS counted_first_sent_at, s.first_sent_at AS stored_first_sent_at,
       c.last_sent_at AS counted_last_sent_at, s.last_sent_at AS stored_last_sent_at
FROM counted c FULL JOIN stored s USING (mailing_id, minute)
WHERE (c.sent, c.parts, c.first_sent_at, c.last_sent_at) IS DISTINCT FROM (s.sent, s.parts, s.first_sent_at, s.last_sent_at)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, minute

-- name: clients_difference
SELECT (SELECT coalesce(sum(clients), 0) FROM client_counts)::bigint AS counted,
       (SELECT count(*) FROM clients) AS stored

-- name: lock_writers_out
-- Writers of messages and clients wait while the counters are recounted; readers do not.
LOCK TABLE messages, clients IN SHARE MODE

-- name: rebuild_forget_counts
DELETE FROM message_counts c USING mailings g
WHERE g.id = c.mailing_id AND g.messages_purged_at IS NULL

-- name: rebuild_forget_sends
DELETE FROM message_sends_per_minute s USING mailings g
WHERE g.id = s.mailing_id AND g.messages_purged_at IS NULL

-- name: rebuild_count
INSERT INTO message_counts (mailing_id, status, error_kind, shard, messages, attempts)
SELECT m.mailing_id, m.status, coalesce(m.error_kind, ''), 0, count(*), sum(m.attempts)
FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
GROUP BY m.mailing_id, m.status, coalesce(m.error_kind, '')

-- name: rebuild_sends
INSERT INTO message_sends_per_minute (mailing_id, minute, shard, sent, parts, first_sent_at, last_sent_at)
SELECT m.mailing_id, date_trunc('minute', m.sent_at, 'UTC'), 0, count(*), sum({parts_of_sent}), min(m.sent_at),
       max(m.sent_at)
FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
WHERE m.status = {status.sent} AND m.sent_at IS NOT NULL
GROUP BY m.mailing_id, date_trunc('minute', m.sent_at, 'UTC')

-- name: rebuild_forget_clients
DELETE FROM client_counts

-- name: rebuild_clients
INSERT INTO client_counts (shard, clients) SELECT 0, count(*) FROM clients

-- name: reserve_idle_shards
-- Shards holding rows that no writer holds right now, reserved for this transaction.
SELECT coalesce(array_agg(shard ORDER BY shard), '{}') AS shards
FROM (
    SELECT shard FROM message_counts
    UNION
    SELECT shard FROM message_sends_per_minute
    UNION
    SELECT shard FROM client_counts
    UNION
    SELECT shard FROM message_errors_per_minute
    UNION
    SELECT shard FROM message_provider_counts
    UNION
    SELECT shard FROM message_delivery_counts
    UNION
    SELECT 0
) used
WHERE shard < %(shards)s AND pg_try_advisory_xact_lock(%(key)s, shard)

-- name: fold_counts
-- Into the lowest reserved shard, added to what it holds; then the others are emptied, and keys
-- whose sum came to nothing (a mailing with no pending message left) disappear.
INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
SELECT mailing_id, status, error_kind, %(target)s, sum(messages), sum(attempts)
FROM message_counts WHERE shard = ANY(%(others)s)
GROUP BY mailing_id, status, error_kind
ORDER BY mailing_id, status, error_kind
ON CONFLICT (mailing_id, status, error_kind, shard) DO UPDATE
SET messages = c.messages + excluded.messages, attempts = c.attempts + excluded.attempts

-- name: fold_empty_counts
DELETE FROM message_counts WHERE shard = ANY(%(others)s)

-- name: fold_drop_zero_counts
DELETE FROM message_counts WHERE shard = %(target)s AND messages = 0 AND attempts = 0

-- name: fold_sends
INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, parts, first_sent_at, last_sent_at)
SELECT mailing_id, minute, %(target)s, sum(sent), sum(parts), min(first_sent_at), max(last_sent_at)
FROM message_sends_per_minute WHERE shard = ANY(%(others)s)
GROUP BY mailing_id, minute
ORDER BY mailing_id, minute
ON CONFLICT (mailing_id, minute, shard) DO UPDATE
SET sent = s.sent + excluded.sent,
    parts = s.parts + excluded.parts,
    first_sent_at = least(s.first_sent_at, excluded.first_sent_at),
    last_sent_at = greatest(s.last_sent_at, excluded.last_sent_at)

-- name: fold_empty_sends
DELETE FROM message_sends_per_minute WHERE shard = ANY(%(others)s)

-- name: fold_drop_zero_sends
DELETE FROM message_sends_per_minute WHERE shard = %(target)s AND sent = 0 AND parts = 0

-- name: fold_clients
INSERT INTO client_counts AS c (shard, clients)
SELECT %(target)s, sum(clients) FROM client_counts WHERE shard = ANY(%(others)s) HAVING count(*) > 0
ON CONFLICT (shard) DO UPDATE SET clients = c.clients + excluded.clients

-- name: fold_empty_clients
DELETE FROM client_counts WHERE shard = ANY(%(others)s)

-- name: counter_rows
SELECT (SELECT count(*) FROM message_counts) + (SELECT count(*) FROM message_sends_per_minute)
       + (SELECT count(*) FROM client_counts) + (SELECT count(*) FROM message_errors_per_minute)
       + (SELECT count(*) FROM message_provider_counts) + (SELECT count(*) FROM message_delivery_counts)

-- name: read_only_snapshot
-- Every statement of the transaction reads the same moment, and none writes.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: errors_differences
-- Messages counted while unsent with an error, by the minute they are due in (migration 0015).
WITH counted AS (
    SELECT mailing_id, minute, error_kind, sum(messages) AS messages
    FROM message_errors_per_minute
    GROUP BY mailing_id, minute, error_kind
    HAVING sum(messages) <> 0
), stored AS (
    SELECT mailing_id, date_trunc('minute', due_at, 'UTC') AS minute, error_kind, count(*) AS messages
    FROM messages
    WHERE status <> {status.sent} AND error_kind IS NOT NULL
    GROUP BY mailing_id, date_trunc('minute', due_at, 'UTC'), error_kind
)
SELECT mailing_id, minute, error_kind,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages
FROM counted c FULL JOIN stored s USING (mailing_id, minute, error_kind)
WHERE coalesce(c.messages, 0) <> coalesce(s.messages, 0)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, minute, error_kind

-- name: rebuild_forget_errors
DELETE FROM message_errors_per_minute e USING mailings g
WHERE g.id = e.mailing_id AND g.messages_purged_at IS NULL

-- name: rebuild_errors
INSERT INTO message_errors_per_minute (mailing_id, minute, error_kind, shard, messages)
SELECT m.mailing_id, date_trunc('minute', m.due_at, 'UTC'), m.error_kind, 0, count(*)
FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
WHERE m.status <> {status.sent} AND m.error_kind IS NOT NULL
GROUP BY m.mailing_id, date_trunc('minute', m.due_at, 'UTC'), m.error_kind

-- name: fold_errors
INSERT INTO message_errors_per_minute AS e (mailing_id, minute, error_kind, shard, messages)
SELECT mailing_id, minute, error_kind, %(target)s, sum(messages)
FROM message_errors_per_minute WHERE shard = ANY(%(others)s)
GROUP BY mailing_id, minute, error_kind
ORDER BY mailing_id, minute, error_kind
ON CONFLICT (mailing_id, minute, error_kind, shard) DO UPDATE SET messages = e.messages + excluded.messages

-- name: fold_empty_errors
DELETE FROM message_errors_per_minute WHERE shard = ANY(%(others)s)

-- name: fold_drop_zero_errors
DELETE FROM message_errors_per_minute WHERE shard = %(target)s AND messages = 0

-- name: providers_differences
-- Messages counted under the provider of their last attempt (migration 0021).
WITH counted AS (
    SELECT mailing_id, provider, status, sum(messages) AS messages
    FROM message_provider_counts
    GROUP BY mailing_id, provider, status
    HAVING sum(messages) <> 0
), stored AS (
    SELECT mailing_id, provider, status, count(*) AS messages
    FROM messages
    WHERE provider IS NOT NULL
    GROUP BY mailing_id, provider, status
)
SELECT mailing_id, provider, status,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages
FROM counted c FULL JOIN stored s USING (mailing_id, provider, status)
WHERE coalesce(c.messages, 0) <> coalesce(s.messages, 0)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, provider, status

-- name: rebuild_forget_providers
DELETE FROM message_provider_counts p USING mailings g
WHERE g.id = p.mailing_id AND g.messages_purged_at IS NULL

-- name: rebuild_providers
INSERT INTO message_provider_counts (mailing_id, provider, status, shard, messages)
SELECT m.mailing_id, m.provider, m.status, 0, count(*)
FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
WHERE m.provider IS NOT NULL
GROUP BY m.mailing_id, m.provider, m.status

-- name: fold_providers
INSERT INTO message_provider_counts AS p (mailing_id, provider, status, shard, messages)
SELECT mailing_id, provider, status, %(target)s, sum(messages)
FROM message_provider_counts WHERE shard = ANY(%(others)s)
GROUP BY mailing_id, provider, status
ORDER BY mailing_id, provider, status
ON CONFLICT (mailing_id, provider, status, shard) DO UPDATE SET messages = p.messages + excluded.messages

-- name: fold_empty_providers
DELETE FROM message_provider_counts WHERE shard = ANY(%(others)s)

-- name: fold_drop_zero_providers
DELETE FROM message_provider_counts WHERE shard = %(target)s AND messages = 0

-- name: deliveries_differences
-- Messages counted by delivery state (migration 0023).
WITH counted AS (
    SELECT mailing_id, delivery_state, sum(messages) AS messages
    FROM message_delivery_counts
    GROUP BY mailing_id, delivery_state
    HAVING sum(messages) <> 0
), stored AS (
    SELECT mailing_id, delivery_state, count(*) AS messages
    FROM messages
    WHERE delivery_state IS NOT NULL
    GROUP BY mailing_id, delivery_state
)
SELECT mailing_id, delivery_state,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages
FROM counted c FULL JOIN stored s USING (mailing_id, delivery_state)
WHERE coalesce(c.messages, 0) <> coalesce(s.messages, 0)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, delivery_state

-- name: rebuild_forget_deliveries
DELETE FROM message_delivery_counts d USING mailings g
WHERE g.id = d.mailing_id AND g.messages_purged_at IS NULL

-- name: rebuild_deliveries
INSERT INTO message_delivery_counts (mailing_id, delivery_state, shard, messages)
SELECT m.mailing_id, m.delivery_state, 0, count(*)
FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
WHERE m.delivery_state IS NOT NULL
GROUP BY m.mailing_id, m.delivery_state

-- name: fold_deliveries
INSERT INTO message_delivery_counts AS d (mailing_id, delivery_state, shard, messages)
SELECT mailing_id, delivery_state, %(target)s, sum(messages)
FROM message_delivery_counts WHERE shard = ANY(%(others)s)
GROUP BY mailing_id, delivery_state
ORDER BY mailing_id, delivery_state
ON CONFLICT (mailing_id, delivery_state, shard) DO UPDATE SET messages = d.messages + excluded.messages

-- name: fold_empty_deliveries
DELETE FROM message_delivery_counts WHERE shard = ANY(%(others)s)

-- name: fold_drop_zero_deliveries
DELETE FROM message_delivery_counts WHERE shard = %(target)s AND messages = 0
