"""The daily report's SQL, as named statements (psycopg parameters).

The day is a half-open range of instants ``[day_start, day_end)``, the report time zone's midnights
computed once in Python; every figure is counted in the database."""

from __future__ import annotations

# A mailing belongs to the day when its window [start_at, end_at) overlaps the day. Counts by
# status come from the (mailing_id, status) index and the day's sends from the partial
# (mailing_id, sent_at) index: a large mailing costs two index scans, not a read of its rows.
# A report of a day not over yet (`report send --date` today) lists as ended only what has ended.
# The last row (is_total) holds the totals over the day's mailings.
MAILINGS_OF_THE_DAY = """
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
               count(*) FILTER (WHERE m.status = 'pending') AS pending,
               count(*) FILTER (WHERE m.status = 'sent') AS sent,
               count(*) FILTER (WHERE m.status = 'failed') AS failed,
               count(*) FILTER (WHERE m.status = 'expired') AS expired,
               count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled
        FROM messages m WHERE m.mailing_id = g.id
    ) c
    CROSS JOIN LATERAL (
        SELECT count(*) AS sent_that_day
        FROM messages m
        WHERE m.mailing_id = g.id AND m.status = 'sent'
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
"""

# Why the day's mailings left messages undelivered, by the kind of their last error.
TOP_ERROR_KINDS = """
SELECT m.error_kind AS kind, count(*) AS messages
FROM mailings g
JOIN messages m ON m.mailing_id = g.id
WHERE g.start_at < %(day_end)s AND g.end_at > %(day_start)s
  AND m.status <> 'sent' AND m.error_kind IS NOT NULL
GROUP BY 1
ORDER BY messages DESC, kind
LIMIT %(limit)s
"""

# The day's row exists once it was due: whoever comes first creates it, nobody creates a second.
RECORD_DUE = """
INSERT INTO report_deliveries (report_day, next_attempt_at)
VALUES (%(report_day)s, %(now)s)
ON CONFLICT (report_day) DO NOTHING
"""

# One sender at a time: the row's lease, taken only when an attempt is due and nobody holds it.
CLAIM_ATTEMPT = """
UPDATE report_deliveries
SET attempts = attempts + 1, leased_until = %(lease_until)s, updated_at = %(now)s
WHERE report_day = %(report_day)s
  AND status = 'pending'
  AND next_attempt_at <= %(now)s
  AND (leased_until IS NULL OR leased_until <= %(now)s)
RETURNING attempts
"""

RECORD_SENT = """
UPDATE report_deliveries
SET status = 'sent', sent_at = %(sent_at)s, leased_until = NULL, recipients = %(recipients)s,
    last_error = NULL, updated_at = %(now)s
WHERE report_day = %(report_day)s
"""

RECORD_RETRY = """
UPDATE report_deliveries
SET next_attempt_at = %(retry_at)s, leased_until = NULL, last_error = %(error)s, updated_at = %(now)s
WHERE report_day = %(report_day)s
"""

RECORD_REFUSED = """
UPDATE report_deliveries
SET status = 'failed', leased_until = NULL, last_error = %(error)s, updated_at = %(now)s
WHERE report_day = %(report_day)s
"""

# A day's report is only due on the day after it: one still pending once that day is over is missed.
RECORD_MISSED = """
UPDATE report_deliveries
SET status = 'missed', leased_until = NULL, updated_at = %(now)s
WHERE status = 'pending' AND report_day < %(report_day)s
"""
