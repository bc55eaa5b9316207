-- The daily report's SQL, loaded once by queries.py (notation: notification.lib.sql). The day is
-- a half-open range of instants [day_start, day_end), the report time zone's midnights computed
-- once in Python; every figure is counted in the database. Error kinds are counted as the
-- statistics count them (stats/queries.sql: by_error_kind, unsent_with_error).

-- name: mailings_of_the_day
-- A mailing belongs to the day when its window [start_at, end_at) overlaps the day. Counts by
-- status come from the (mailing_id, status) index and the day's sends from the partial
-- (mailing_id, sent_at) index: a large mailing costs two index scans, not a read of its rows.
-- A report of a day not over yet (`report send --date` today) lists as ended only what has ended.
-- The last row (is_total) holds the totals over the day's mailings.
WITH day_mailings AS (
    SELECT g.id AS mailing_id,
           left(g.text, %(text_head)s) AS text_head,
           char_length(g.text) > %(text_head)s AS text_cut,
           g.start_at,
           g.end_at,
           c.audience, c.pending, c.sent, c.failed, c.expired, c.cancelled,
           d.sent_that_day,
           g.end_at <= least(%(day_end)s, %(now)s) AND c.pending + c.failed + c.expired > 0 AS ended_unsent
    FROM mailings g
    CROSS JOIN LATERAL (
        SELECT count(*) AS audience,
               count(*) FILTER (WHERE m.status = {status.pending}) AS pending,
               count(*) FILTER (WHERE m.status = {status.sent}) AS sent,
               count(*) FILTER (WHERE m.status = {status.failed}) AS failed,
               count(*) FILTER (WHERE m.status = {status.expired}) AS expired,
               count(*) FILTER (WHERE m.status = {status.cancelled}) AS cancelled
        FROM messages m WHERE m.mailing_id = g.id
    ) c
    CROSS JOIN LATERAL (
        SELECT count(*) AS sent_that_day
        FROM messages m
        WHERE m.mailing_id = g.id AND m.status = {status.sent}
          AND m.sent_at >= %(day_start)s AND m.sent_at < %(day_end)s
    ) d
    WHERE g.start_at < %(day_end)s AND g.end_at > %(day_start)s
)
SELECT false AS is_total, mailing_id, text_head, text_cut, start_at, end_at,
       audience, pending, sent, failed, expired, cancelled, sent_that_day, ended_unsent
FROM day_mailings
UNION ALL
SELECT true, NULL, NULL, NULL, NULL, NULL,
       coalesce(sum(audience), 0), coalesce(sum(pending), 0), coalesce(sum(sent), 0),
       coalesce(sum(failed), 0), coalesce(sum(expired), 0), coalesce(sum(cancelled), 0),
       coalesce(sum(sent_that_day), 0), NULL
FROM day_mailings
ORDER BY is_total, start_at, mailing_id

-- name: top_error_kinds
-- Why the day's mailings left messages undelivered, by the kind of their last error.
{by_error_kind}
FROM mailings g
JOIN messages m ON m.mailing_id = g.id
WHERE g.start_at < %(day_end)s AND g.end_at > %(day_start)s AND {unsent_with_error}
GROUP BY 1
ORDER BY messages DESC, kind
LIMIT %(limit)s

-- name: record_due
-- The day's row exists once it was due: whoever comes first creates it, nobody creates a second.
INSERT INTO report_deliveries (report_day, next_attempt_at)
VALUES (%(report_day)s, %(now)s)
ON CONFLICT (report_day) DO NOTHING

-- name: claim_attempt
-- One sender at a time: the row's lease, taken only when an attempt is due and nobody holds it.
UPDATE report_deliveries
SET attempts = attempts + 1, leased_until = %(lease_until)s, updated_at = %(now)s
WHERE report_day = %(report_day)s
  AND status = {delivery.pending}
  AND next_attempt_at <= %(now)s
  AND (leased_until IS NULL OR leased_until <= %(now)s)
RETURNING attempts

-- name: record_sent
UPDATE report_deliveries
SET status = {delivery.sent}, sent_at = %(sent_at)s, leased_until = NULL, recipients = %(recipients)s,
    last_error = NULL, updated_at = %(now)s
WHERE report_day = %(report_day)s

-- name: record_retry
UPDATE report_deliveries
SET next_attempt_at = %(retry_at)s, leased_until = NULL, last_error = %(error)s, updated_at = %(now)s
WHERE report_day = %(report_day)s

-- name: record_refused
UPDATE report_deliveries
SET status = {delivery.failed}, leased_until = NULL, last_error = %(error)s, updated_at = %(now)s
WHERE report_day = %(report_day)s

-- name: record_missed
-- A day's report is only due on the day after it: one still pending once that day is over is missed.
UPDATE report_deliveries
SET status = {delivery.missed}, leased_until = NULL, updated_at = %(now)s
WHERE status = {delivery.pending} AND report_day < %(report_day)s

-- name: read_only_snapshot
-- The totals, the mailings and the error kinds describe the same moment.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: deliveries_of_mailings
-- The day's mailings' messages by delivery state, from their counters (migration 0023).
SELECT delivery_state, sum(messages)::bigint AS messages
FROM message_delivery_counts WHERE mailing_id = ANY(%(ids)s)
GROUP BY delivery_state
