-- The SQL of schedules, one named statement per block.

-- name: schedules_to_look_at
-- Schedules whose occurrences up to the horizon have not all been considered yet.
SELECT id FROM schedules
WHERE paused_at IS NULL AND (considered_until IS NULL OR considered_until < :horizon)
ORDER BY id

-- name: counts_of_schedule
-- The schedule's messages by status: the sum of its occurrences' counters.
SELECT v.status, sum(v.messages)::bigint AS messages
FROM mailing_status_counts v
WHERE v.mailing_id = ANY(ARRAY(SELECT id FROM mailings WHERE schedule_id = :schedule_id))
GROUP BY v.status

-- name: counts_of_schedules
SELECT g.schedule_id, v.status, sum(v.messages)::bigint AS messages, count(DISTINCT g.id) AS occurrences
FROM mailings g JOIN mailing_status_counts v ON v.mailing_id = g.id
WHERE g.schedule_id = ANY(CAST(:ids AS bigint[]))
GROUP BY g.schedule_id, v.status
