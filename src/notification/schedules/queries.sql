-- The SQL of schedules, loaded once by queries.py (notation: notification.lib.sql).

-- name: schedules_to_look_at
-- Schedules whose occurrences up to the horizon have not all been considered yet.
SELECT id FROM schedules
WHERE paused_at IS NULL AND (considered_until IS NULL OR considered_until < %(horizon)s)
ORDER BY id

-- name: counts_of_schedule
-- The schedule's messages by status: the sum of its occurrences' counters.
SELECT v.status, sum(v.messages)::bigint AS messages
FROM mailing_status_counts v
WHERE v.mailing_id = ANY(ARRAY(SELECT id FROM mailings WHERE schedule_id = %(schedule_id)s))
GROUP BY v.status

-- name: schedules_of_the_day
-- For the daily report: each schedule with an occurrence active that day, and the sum of all its
-- occurrences' counters.
WITH day_schedules AS (
    SELECT schedule_id, count(*) AS occurrences_that_day FROM mailings
    WHERE schedule_id IS NOT NULL AND start_at < %(day_end)s AND end_at > %(day_start)s
    GROUP BY schedule_id
)
SELECT s.id AS schedule_id, s.name, d.occurrences_that_day,
       (SELECT count(*) FROM mailings g WHERE g.schedule_id = s.id) AS occurrences,
       coalesce(sum(v.messages) FILTER (WHERE v.status = {status.pending}), 0)::bigint AS pending,
       coalesce(sum(v.messages) FILTER (WHERE v.status = {status.sent}), 0)::bigint AS sent,
       coalesce(sum(v.messages) FILTER (WHERE v.status = {status.failed}), 0)::bigint AS failed,
       coalesce(sum(v.messages) FILTER (WHERE v.status = {status.expired}), 0)::bigint AS expired,
       coalesce(sum(v.messages) FILTER (WHERE v.status = {status.cancelled}), 0)::bigint AS cancelled
FROM day_schedules d
JOIN schedules s ON s.id = d.schedule_id
LEFT JOIN mailings g ON g.schedule_id = s.id
LEFT JOIN mailing_status_counts v ON v.mailing_id = g.id
GROUP BY s.id, s.name, d.occurrences_that_day
ORDER BY s.id
