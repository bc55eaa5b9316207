-- The delivery engine's reads and its own writes of mailings, one named statement per block,
-- loaded once by queries.py together with messages/state.sql, the statements that change a
-- message's state (claims, answers, expiries, cancellations): a block here may compose those by
-- name, as `{due_in_batch}` below does.
--
-- `{status.pending}` and `{error_kind.deadline}` stand for the quoted values of the
-- MessageStatus and ErrorKind enums; `{name}` of another block is replaced by that block; any
-- other `{...}` is left for psycopg's sql.SQL.format at run time.

-- name: lock_mailing_for_planning
-- NO KEY UPDATE: planning changes none of the mailing's keys, and a stronger lock would also
-- hold off the foreign-key check of a batch adding its mailing's first counter row of a kind
-- while that batch holds messages planning waits for (a deadlock).
-- A mailing using a saved audience takes the audience's filter as it is now: who matches then.
SELECT g.id, g.start_at, g.end_at,
       coalesce(a.filter_operator_codes, g.filter_operator_codes) AS filter_operator_codes,
       coalesce(a.filter_tags, g.filter_tags) AS filter_tags,
       coalesce(a.filter_attributes, g.filter_attributes) AS filter_attributes,
       g.send_window_start, g.send_window_end, g.plan_version, g.planned_version, g.paused_at, g.kind,
       now() AS now
FROM mailings g LEFT JOIN audiences a ON a.id = g.audience_id
WHERE g.id = %(mailing_id)s FOR NO KEY UPDATE OF g

-- name: pending_zones_of_mailing
SELECT DISTINCT c.timezone FROM messages m JOIN clients c ON c.id = m.client_id
WHERE m.mailing_id = %(mailing_id)s AND m.status = {status.pending}

-- name: pending_batches
-- Batches in due order, so that one batch holds messages due at about the same time.
SELECT array_agg(id ORDER BY id) AS ids, min(due_at) AS due_at
FROM (
    SELECT id, due_at, (row_number() OVER (ORDER BY due_at, id) - 1) / %(batch_size)s AS batch
    FROM messages WHERE mailing_id = %(mailing_id)s AND status = {status.pending}
) pending
GROUP BY batch ORDER BY batch

-- name: count_left_out
-- The clients of the filter the plan leaves out, and why (a suppressed number counts as
-- suppressed whatever its consent). Only they are read past the filter: the suppressed through
-- the list's key, the rest, for advertising, by the consent columns of the rows the filter reads.
SELECT count(*) FILTER (WHERE s.phone IS NOT NULL) AS suppressed,
       count(*) FILTER (WHERE s.phone IS NULL) AS no_consent
FROM clients c LEFT JOIN suppressions s ON s.phone = c.phone
WHERE {filter} AND {ineligible}

-- name: record_left_out
UPDATE mailings SET left_out_suppressed = %(suppressed)s, left_out_no_consent = %(no_consent)s
WHERE id = %(mailing_id)s

-- name: mark_planned
UPDATE mailings SET planned_version = %(plan_version)s, planned_at = now() WHERE id = %(mailing_id)s

-- name: mailing_for_batch
SELECT text, encoding, parts, start_at, end_at, plan_version, paused_at, send_window_start, send_window_end,
       kind, now() AS now
FROM mailings WHERE id = %(mailing_id)s

-- name: closed_zones_in_batch
-- The zones of the batch's due messages left waiting by the window (same transaction, same now()).
SELECT DISTINCT c.timezone FROM messages m JOIN clients c ON c.id = m.client_id {wall_time}
WHERE {due_in_batch} AND NOT ({window_open})

-- name: remaining_in_batch
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids,
       min(greatest(due_at, coalesce(leased_until, due_at))) AS next_at
FROM messages
WHERE id = ANY(%(ids)s) AND status = {status.pending}

-- name: unplanned_due_mailings
-- Due mailings whose current plan has not run, and for which no planning job is queued or
-- running: a job left 'doing' by a dead worker is the stalled-job sweep's to retry, and a twin
-- deferred beside it could never start while it holds the mailing's lock.
SELECT g.id, g.plan_version FROM mailings g
WHERE g.start_at <= now() AND g.end_at > now() AND g.planned_version < g.plan_version
  AND NOT EXISTS (
      SELECT 1 FROM procrastinate_jobs j
      WHERE j.lock = %(plan_lock_prefix)s || g.id AND j.status IN ('todo', 'doing')
  )

-- name: watch_mailings
SELECT id, plan_version, paused_at, text, encoding, parts FROM mailings WHERE id = ANY(%(ids)s)

-- name: settled_among
-- Messages held by running batches that were settled elsewhere meanwhile (a client deletion
-- cancels them): the batch must not send them.
SELECT id FROM messages WHERE id = ANY(%(ids)s) AND status <> {status.pending}

-- name: database_now
-- The transaction's own now(), the clock the statements of the same transaction compare with.
SELECT now() AS now

-- name: analyze_messages
ANALYZE messages

-- name: mailing_has_pending
-- Whether anything of the mailing is left to send: the (mailing_id, status) index answers it.
SELECT EXISTS (SELECT 1 FROM messages WHERE mailing_id = %(mailing_id)s AND status = {status.pending})
