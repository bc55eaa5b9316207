-- The webhook dispatcher's SQL, one named statement per block, loaded once by queries.py.

-- name: claim
-- Up to each endpoint's room of its oldest due events, skipping an event while an earlier one of
-- the same subject is undelivered (in flight or waiting for a retry): that is the order per
-- message. An endpoint in its backoff is left alone as a whole. A claimed row is leased: it is
-- not due again until the lease runs out, which is how a dead dispatcher's rows come back.
WITH ready AS (
    SELECT e.id, greatest(0, %(per_endpoint)s - coalesce(b.in_flight, 0)) AS room
    FROM webhook_endpoints e
    LEFT JOIN unnest(%(busy_endpoints)s::bigint[], %(busy_counts)s::int[]) AS b (endpoint_id, in_flight)
           ON b.endpoint_id = e.id
    WHERE e.enabled AND (e.retry_at IS NULL OR e.retry_at <= now())
), chosen AS (
    SELECT c.id
    FROM ready r
    CROSS JOIN LATERAL (
        SELECT o.id
        FROM webhook_outbox o
        WHERE o.endpoint_id = r.id AND o.delivered_at IS NULL AND o.next_attempt_at <= now()
          -- The first undelivered row of its subject. A scalar subquery, not NOT EXISTS: the planner
          -- then always probes the subject index by both columns, where an anti-join judged on the
          -- statistics of a table that just grew scanned every undelivered row of the endpoint.
          AND o.id = (
              SELECT min(p.id) FROM webhook_outbox p
              WHERE p.endpoint_id = o.endpoint_id AND p.subject = o.subject AND p.delivered_at IS NULL
          )
        ORDER BY o.id
        LIMIT r.room
    ) c
    ORDER BY c.id
    LIMIT %(limit)s
), locked AS (
    SELECT o.id FROM webhook_outbox o WHERE o.id IN (SELECT id FROM chosen) FOR UPDATE SKIP LOCKED
)
UPDATE webhook_outbox o
SET leased_until = now() + make_interval(secs => %(lease_s)s),
    next_attempt_at = now() + make_interval(secs => %(lease_s)s),
    attempts = o.attempts + 1,
    last_attempt_at = now()
FROM locked l, webhook_endpoints e
WHERE o.id = l.id AND e.id = o.endpoint_id
RETURNING o.id, o.endpoint_id, e.url, e.secret, o.event_type, o.subject, o.payload::text AS body

-- name: release
UPDATE webhook_outbox SET leased_until = NULL, next_attempt_at = now()
WHERE id = ANY (%(ids)s::bigint[]) AND delivered_at IS NULL

-- name: next_due_s
-- Seconds until the next retry of an enabled endpoint is due (an endpoint's backoff, or a row's
-- own); none when nothing is waiting for a retry.
SELECT extract(epoch FROM least(
    (SELECT min(retry_at) FROM webhook_endpoints WHERE enabled AND retry_at > now()),
    (SELECT min(o.next_attempt_at)
     FROM webhook_outbox o JOIN webhook_endpoints e ON e.id = o.endpoint_id
     WHERE e.enabled AND o.delivered_at IS NULL AND o.next_attempt_at > now())
) - now())::float8

-- name: record_failed
-- The delay is capped exponential, half of it random ("equal jitter"): per row by its attempts,
-- per endpoint by its failed rounds in a row (a dead endpoint is tried once a round, not per row).
WITH failed AS (
    UPDATE webhook_outbox o
    SET leased_until = NULL, last_status = r.status, last_error = r.error,
        next_attempt_at = now() + make_interval(
            secs => least(%(max_s)s, %(base_s)s * power(2, least(o.attempts - 1, 30))) * (0.5 + random() / 2)
        )
    FROM unnest(%(ids)s::bigint[], %(statuses)s::int[], %(errors)s::text[]) AS r (id, status, error)
    WHERE o.id = r.id AND o.delivered_at IS NULL
    RETURNING o.endpoint_id
)
UPDATE webhook_endpoints e
SET failing_since = coalesce(e.failing_since, now()),
    failures = e.failures + 1,
    retry_at = now() + make_interval(
        secs => least(%(max_s)s, %(base_s)s * power(2, least(e.failures, 30))) * (0.5 + random() / 2)
    )
WHERE e.id IN (SELECT endpoint_id FROM failed)

-- name: record_delivered
WITH delivered AS (
    UPDATE webhook_outbox o
    SET delivered_at = now(), leased_until = NULL, last_status = r.status, last_error = NULL
    FROM unnest(%(ids)s::bigint[], %(statuses)s::int[]) AS r (id, status)
    WHERE o.id = r.id AND o.delivered_at IS NULL
    RETURNING o.endpoint_id
)
UPDATE webhook_endpoints e
SET failing_since = NULL, failures = 0, retry_at = NULL, last_success_at = now()
WHERE e.id IN (SELECT endpoint_id FROM delivered)

-- name: disable_failing
-- Failing without a single success for long enough: disabled, and the audit log says so, in one statement.
WITH disabled AS (
    UPDATE webhook_endpoints
    SET enabled = false, disabled_at = now(), updated_at = now(),
        disabled_reason = 'every request failed since ' || webhook_time(failing_since)
                          || ' (' || failures || ' failed rounds in a row)'
    WHERE enabled AND failing_since <= now() - make_interval(secs => %(after_s)s)
    RETURNING id, failing_since, failures
)
INSERT INTO audit_log (at, actor, via, action, entity, entity_id, changes)
SELECT now(), %(actor)s, {via.worker}, {action.disable}, {entity.webhook}, d.id,
       jsonb_build_object(
           'enabled', jsonb_build_object('old', true, 'new', false),
           'failing_since', jsonb_build_object('old', NULL, 'new', webhook_time(d.failing_since)),
           'failures', jsonb_build_object('old', NULL, 'new', d.failures)
       )
FROM disabled d
RETURNING entity_id

-- name: prune
DELETE FROM webhook_outbox
WHERE id IN (
    SELECT id FROM webhook_outbox
    WHERE created_at < now() - make_interval(secs => %(retention_s)s)
    ORDER BY created_at
    LIMIT %(limit)s
)
