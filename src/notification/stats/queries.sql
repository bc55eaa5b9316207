-- The statistics' reads, loaded once by queries.py (notation: notification.lib.sql). Figures by
-- status come from the reporting views and the counters behind them (migration 0010); only the
-- error kinds of a mailing or of the last hour read messages.

-- name: all_mailing_counts
-- One row per mailing, its counts side by side (a fifth of the rows of one per status, which took
-- most of the request at 1,000 mailings); mailings without messages yet still appear, with zeros.
SELECT g.id AS mailing_id,
       coalesce((SELECT sum(p.parts) FROM message_sends_per_minute p WHERE p.mailing_id = g.id), 0)::bigint
           AS parts_sent,
       coalesce(sum(c.messages) FILTER (WHERE c.status = {status.pending}), 0)::bigint AS pending,
       coalesce(sum(c.messages) FILTER (WHERE c.status = {status.sent}), 0)::bigint AS sent,
       coalesce(sum(c.messages) FILTER (WHERE c.status = {status.failed}), 0)::bigint AS failed,
       coalesce(sum(c.messages) FILTER (WHERE c.status = {status.expired}), 0)::bigint AS expired,
       coalesce(sum(c.messages) FILTER (WHERE c.status = {status.cancelled}), 0)::bigint AS cancelled
FROM mailings g LEFT JOIN message_counts c ON c.mailing_id = g.id
GROUP BY g.id
ORDER BY g.id

-- name: mailing_counts
SELECT status, messages FROM mailing_status_counts WHERE mailing_id = %(mailing_id)s

-- name: mailing_parts_sent
-- The SMS parts of the messages sent, each its own text's, from the sends rollup.
SELECT coalesce(sum(parts), 0)::bigint AS parts_sent FROM message_sends_per_minute WHERE mailing_id = %(mailing_id)s

-- name: mailing_timings
-- The first and last send time of the mailing's first and last minute with a send in it.
SELECT g.planned_at, g.messages_purged_at, t.first_sent_at, t.last_sent_at
FROM mailings g
LEFT JOIN mailing_stats t ON t.mailing_id = g.id
WHERE g.id = %(mailing_id)s

-- name: sends_per_minute
-- Every minute of [since, until), zeros included, for one mailing or all of them.
SELECT m.minute, coalesce(s.sent, 0)::bigint AS sent
FROM generate_series(
    date_trunc('minute', CAST(%(since)s AS timestamptz), 'UTC'),
    CAST(%(until)s AS timestamptz) - interval '1 microsecond',
    interval '1 minute'
) AS m(minute)
LEFT JOIN (
    SELECT minute, sum(sent) AS sent
    FROM message_sends_per_minute
    WHERE minute >= date_trunc('minute', CAST(%(since)s AS timestamptz), 'UTC')
      AND minute < CAST(%(until)s AS timestamptz)
      AND (CAST(%(mailing_id)s AS bigint) IS NULL OR mailing_id = CAST(%(mailing_id)s AS bigint))
    GROUP BY minute
) s ON s.minute = m.minute
ORDER BY m.minute

-- name: mailing_window_waits
SELECT count(*) AS waiting, min(m.due_at) AS next_opening
FROM mailings g
JOIN messages m ON m.mailing_id = g.id AND m.status = {status.pending} AND m.due_at > now()
WHERE g.id = %(mailing_id)s AND g.send_window_start IS NOT NULL

-- name: message_totals
SELECT status, messages FROM message_status_totals

-- name: counts_of_mailings
-- The condition on the grouped column reaches into the view: only these mailings' rows are counted.
SELECT mailing_id, status, messages FROM mailing_status_counts WHERE mailing_id = ANY(CAST(%(ids)s AS bigint[]))

-- name: totals_of_mailings_running_between
SELECT status, sum(messages) AS messages FROM mailing_status_counts
WHERE mailing_id = ANY(ARRAY(SELECT id FROM mailings WHERE end_at > %(since)s AND start_at < %(until)s))
GROUP BY status

-- name: by_error_kind
-- Error kinds are counted one way everywhere: the messages not sent whose last error is of each
-- kind. A sent message keeps no error; naming the other statuses lets the (mailing_id, status)
-- index skip the sent ones, most of a mailing, instead of reading each to drop it.
SELECT m.error_kind AS kind, count(*) AS messages

-- name: unsent_with_error
m.status IN ({status.pending}, {status.failed}, {status.expired}, {status.cancelled}) AND m.error_kind IS NOT NULL

-- name: error_kinds_since
-- A message is attempted when it falls due and a retry makes it due again later, so its due time
-- dates its last error closely enough for "the last hour". Read from the errors rollup (migration
-- 0015), to the minute: the minute ``since`` falls in counts whole.
SELECT error_kind AS kind, sum(messages)::bigint AS messages
FROM message_errors_per_minute
WHERE minute >= date_trunc('minute', CAST(%(since)s AS timestamptz), 'UTC')
GROUP BY 1
HAVING sum(messages) <> 0

-- name: mailing_error_kinds
-- A sent message keeps no error: the counters of the other statuses carry the mailing's error kinds.
SELECT error_kind AS kind, sum(messages)::bigint AS messages
FROM message_counts
WHERE mailing_id = %(mailing_id)s AND status <> {status.sent} AND error_kind <> ''
GROUP BY 1
HAVING sum(messages) <> 0

-- name: counted_error_kinds
-- The same figure over every message ever counted, retention's deletions included: read from the
-- counters, where a message without an error kind is counted under ''.
SELECT error_kind AS kind, sum(messages)::bigint AS messages
FROM message_counts WHERE error_kind <> ''
GROUP BY error_kind

-- name: mailing_provider_counts
-- A mailing's messages by the provider of their last attempt, from its counters (migration 0021).
SELECT provider,
       sum(messages)::bigint AS messages,
       coalesce(sum(messages) FILTER (WHERE status = {status.sent}), 0)::bigint AS sent,
       coalesce(sum(messages) FILTER (WHERE status = {status.failed}), 0)::bigint AS failed
FROM message_provider_counts
WHERE mailing_id = %(mailing_id)s
GROUP BY provider
HAVING sum(messages) <> 0
ORDER BY 3 DESC, provider

-- name: provider_totals
-- The same over every counted message, retention's deletions included: a few rows per mailing.
SELECT provider,
       sum(messages)::bigint AS messages,
       coalesce(sum(messages) FILTER (WHERE status = {status.sent}), 0)::bigint AS sent,
       coalesce(sum(messages) FILTER (WHERE status = {status.failed}), 0)::bigint AS failed
FROM message_provider_counts
GROUP BY provider
HAVING sum(messages) <> 0
ORDER BY 3 DESC, provider

-- name: delivery_counts
-- Messages by delivery state per mailing, from their counters (migration 0023); a mailing with no
-- receipt yet has no row.
SELECT mailing_id, delivery_state, sum(messages)::bigint AS messages
FROM message_delivery_counts
WHERE %(mailing_id)s::bigint IS NULL OR mailing_id = %(mailing_id)s
GROUP BY mailing_id, delivery_state
HAVING sum(messages) <> 0
