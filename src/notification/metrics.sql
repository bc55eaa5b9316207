-- The domain gauges of /metrics, loaded once by metrics.py (notation: notification.lib.sql).
-- Message figures come from the counters (migration 0010): a few rows per mailing, whatever the
-- size of `messages`. They include the messages retention has deleted since.

-- name: messages
SELECT status, sum(messages)::bigint AS n, sum(attempts)::bigint AS attempts
FROM message_counts GROUP BY status

-- name: clients
SELECT coalesce(sum(clients), 0)::bigint FROM client_counts

-- name: queue
SELECT queue_name, status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY 1, 2

-- name: oldest_due
-- A job is due once its scheduled_at has passed; one deferred without a time is due since it was deferred.
SELECT coalesce(extract(epoch FROM now() - min(coalesce(
         j.scheduled_at,
         (SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id AND e.type = 'deferred')
       ))), 0) AS age_s
FROM procrastinate_jobs j
WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())

-- name: deliveries
-- Messages by delivery state, from their counters (migration 0023).
SELECT delivery_state, sum(messages)::bigint AS n FROM message_delivery_counts GROUP BY delivery_state
