-- Every change of a message's state, one named statement per block, loaded once by state.py.
-- The engine (delivery/) and the entities (clients/, mailings/) and retention (stats/) run these
-- and write messages nowhere else, so that a state change resets the same columns the same way
-- whoever makes it.
--
-- `{status.pending}` and `{error_kind.deadline}` stand for the quoted values of the
-- MessageStatus and ErrorKind enums; `{name}` of another block is replaced by that block; any
-- other `{...}` is left for psycopg's sql.SQL.format at run time (the mailing's client filter,
-- a window's scope).
--
-- Every statement that writes several messages locks them in id order first, as the deletion
-- of a mailing or a client does: two writers taking rows in different orders deadlock.
--
-- What each settled state writes:
--   cancelled  the lease released, error_kind 'cancelled', last_error why (filter, client gone);
--              or error_kind 'suppressed' (the phone is on the suppression list) or 'no_consent'
--              (an advertising message to a client whose consent does not stand);
--   expired    the lease released, error_kind 'deadline' (or 'window_never_opens'), last_error why
--              unless an earlier error says more;
--   pending    again on a re-plan: the error cleared (it belonged to a cancellation); on a retry:
--              attempts and the last error kept until the next answer replaces them.

-- name: cancelled
-- The columns every cancellation writes, beside its own last_error.
status = {status.cancelled}, leased_until = NULL, error_kind = {error_kind.cancelled}

-- name: lock_messages_of_mailing
-- Every message of the mailing, locked up front in id order, the order every writer of messages
-- uses: before a plan (whose statements lock rows in several passes, the clients still matching,
-- then those that no longer do, and would deadlock with a batch writing its answers in id order
-- between two passes) and before a deletion (whose cascade must not deadlock with such a batch).
SELECT count(*) FROM (
    SELECT id FROM messages WHERE mailing_id = %(mailing_id)s ORDER BY id FOR UPDATE
) locked

-- name: add_matching_clients
-- A client cancelled by an earlier plan and matching again is planned again; nothing else that
-- already exists is touched, so planning twice never duplicates a message.
INSERT INTO messages (mailing_id, client_id, due_at)
SELECT %(mailing_id)s, c.id, %(now)s FROM clients c WHERE {filter}
ON CONFLICT (mailing_id, client_id) DO UPDATE
SET status = {status.pending}, due_at = excluded.due_at, last_error = NULL, error_kind = NULL, leased_until = NULL
WHERE messages.status = {status.cancelled}

-- name: cancel_unmatched
WITH unmatched AS (
    SELECT m.id FROM messages m
    WHERE m.mailing_id = %(mailing_id)s AND m.status = {status.pending}
      AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.id = m.client_id AND {filter})
    ORDER BY m.id FOR UPDATE
)
UPDATE messages m
SET {cancelled}, last_error = 'client no longer matches the filter'
FROM unmatched
WHERE m.id = unmatched.id AND m.status = {status.pending}

-- name: cancel_of_client
-- A client's deletion: its pending messages have nobody to go to. The client's messages are
-- locked in id order first; the sent ones stay, detached, in the statistics.
WITH locked AS (
    SELECT id FROM messages WHERE client_id = %(client_id)s ORDER BY id FOR UPDATE
)
UPDATE messages m
SET {cancelled}, last_error = 'client deleted'
FROM locked
WHERE m.id = locked.id AND m.status = {status.pending}

-- name: may_receive
-- Who a mailing may reach beside its filter (clients aliased `c`): no suppressed number, and for
-- advertising (`advertising` true) only a client whose consent stands. The anti-join probes the
-- suppression list's primary key; the consent test reads two columns of the row already read.
NOT EXISTS (SELECT FROM suppressions s WHERE s.phone = c.phone)
AND (NOT %(advertising)s OR (c.consent_given_at IS NOT NULL AND c.consent_revoked_at IS NULL))

-- name: ineligible_kind
-- Why a message of client `c` may not be sent: `s` is the client's suppression row, if any.
CASE WHEN s.phone IS NOT NULL THEN {error_kind.suppressed} ELSE {error_kind.no_consent} END

-- name: ineligible
-- The negation of may_receive, with `s` left-joined.
(s.phone IS NOT NULL
 OR (%(advertising)s AND NOT (c.consent_given_at IS NOT NULL AND c.consent_revoked_at IS NULL)))

-- name: cancel_ineligible_of_mailing
-- On a re-plan: pending messages whose client was suppressed or (advertising) lost its consent
-- since the last plan, cancelled with that reason before the filter is applied again.
WITH ineligible AS (
    SELECT m.id, {ineligible_kind} AS kind FROM messages m
    JOIN clients c ON c.id = m.client_id
    LEFT JOIN suppressions s ON s.phone = c.phone
    WHERE m.mailing_id = %(mailing_id)s AND m.status = {status.pending} AND {ineligible}
    ORDER BY m.id FOR UPDATE OF m
)
UPDATE messages m
SET status = {status.cancelled}, leased_until = NULL, error_kind = ineligible.kind,
    last_error = CASE WHEN ineligible.kind = {error_kind.suppressed} THEN 'phone on the suppression list'
                      ELSE 'client without consent to advertising' END
FROM ineligible
WHERE m.id = ineligible.id AND m.status = {status.pending}

-- name: cancel_of_suppressed_phones
-- Numbers just put on the suppression list: the pending messages of their clients, whatever the
-- mailing, are cancelled now, so a running batch holding one drops it at its watcher's next look.
WITH locked AS (
    SELECT m.id FROM messages m JOIN clients c ON c.id = m.client_id
    WHERE c.phone = ANY(%(phones)s) AND m.status = {status.pending}
    ORDER BY m.id FOR UPDATE OF m
)
UPDATE messages m
SET status = {status.cancelled}, leased_until = NULL, error_kind = {error_kind.suppressed},
    last_error = 'phone on the suppression list'
FROM locked
WHERE m.id = locked.id AND m.status = {status.pending}

-- name: cancel_advertising_of_clients
-- Clients whose consent was just revoked: their pending messages of advertising mailings.
WITH locked AS (
    SELECT m.id FROM messages m JOIN mailings g ON g.id = m.mailing_id
    WHERE m.client_id = ANY(%(client_ids)s) AND m.status = {status.pending} AND g.kind = 'advertising'
    ORDER BY m.id FOR UPDATE OF m
)
UPDATE messages m
SET status = {status.cancelled}, leased_until = NULL, error_kind = {error_kind.no_consent},
    last_error = 'client without consent to advertising'
FROM locked
WHERE m.id = locked.id AND m.status = {status.pending}

-- name: requeue_for_retry
-- Attempts and the last error stay: the error is replaced by the next answer. Messages of a
-- deleted client have nobody to go to.
WITH requeued AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = ANY(%(statuses)s) AND client_id IS NOT NULL
    ORDER BY id FOR UPDATE
)
UPDATE messages m SET status = {status.pending}, due_at = now(), leased_until = NULL
FROM requeued WHERE m.id = requeued.id

-- name: make_overdue_due_now
-- Messages waiting for a retry keep their later due time; the rest are due from now on.
WITH overdue AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = {status.pending} AND due_at < %(now)s
    ORDER BY id FOR UPDATE
)
UPDATE messages m SET due_at = %(now)s FROM overdue
WHERE m.id = overdue.id

-- name: reset_window_waits
-- On a re-plan, a message never tried yet (no last_error) that waits in the future can only be
-- waiting for a send window the update may have moved or removed: it is due again, and the
-- window, if any, is applied afresh. Messages waiting for a retry keep their backoff.
WITH waiting AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = {status.pending} AND due_at > %(now)s AND last_error IS NULL
    ORDER BY id FOR UPDATE
)
UPDATE messages m SET due_at = %(now)s FROM waiting
WHERE m.id = waiting.id

-- name: add_expired_audience
-- Planned too late (workers were down): the audience still shows in the statistics, expired.
INSERT INTO messages (mailing_id, client_id, due_at, status, last_error, error_kind)
SELECT %(mailing_id)s, c.id, %(now)s, {status.expired}, 'end_at passed before the mailing could start',
       {error_kind.deadline}
FROM clients c WHERE {filter}
ON CONFLICT (mailing_id, client_id) DO NOTHING

-- name: expire_pending_of_mailing
WITH pending AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND status = {status.pending} ORDER BY id FOR UPDATE
)
UPDATE messages m
SET status = {status.expired}, leased_until = NULL,
    last_error = 'end_at passed before it could be sent', error_kind = {error_kind.deadline}
FROM pending
WHERE m.id = pending.id AND m.status = {status.pending}

-- name: wait_for_opening
-- Pending messages in {scope} move to their zone's next opening (parameters `zones` and
-- `openings`, computed once per zone with zoneinfo); one whose opening is at or after the
-- mailing's last request start (`last_request_start`, its end less the margin of
-- delivery/policy.py) expires now instead of waiting for nothing.
WITH changing AS (
    SELECT m.id, o.opens_at FROM messages m
    JOIN clients c ON c.id = m.client_id
    JOIN unnest(%(zones)s::text[], %(openings)s::timestamptz[]) AS o(timezone, opens_at)
      ON o.timezone = c.timezone
    WHERE m.status = {status.pending} AND {scope}
      AND (o.opens_at >= %(last_request_start)s OR o.opens_at > m.due_at)
    ORDER BY m.id FOR UPDATE OF m
)
UPDATE messages m
SET status = CASE WHEN changing.opens_at >= %(last_request_start)s THEN {status.expired} ELSE m.status END,
    last_error = CASE WHEN changing.opens_at >= %(last_request_start)s
                      THEN 'send window never opens before end_at' ELSE m.last_error END,
    error_kind = CASE WHEN changing.opens_at >= %(last_request_start)s
                      THEN {error_kind.window_never_opens} ELSE m.error_kind END,
    leased_until = CASE WHEN changing.opens_at >= %(last_request_start)s THEN NULL ELSE m.leased_until END,
    due_at = CASE WHEN changing.opens_at >= %(last_request_start)s THEN m.due_at ELSE changing.opens_at END
FROM changing
WHERE m.id = changing.id AND m.status = {status.pending}
RETURNING m.status

-- name: due_in_batch
-- A message of the batch that a claim may take: pending, due, and not leased by a live twin run.
m.id = ANY(%(ids)s) AND m.mailing_id = %(mailing_id)s AND m.status = {status.pending}
AND m.due_at <= now() AND (m.leased_until IS NULL OR m.leased_until <= now())

-- name: wall_time
CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE c.timezone)::time AS t) wall

-- name: window_open
-- The client's wall time is inside the window, [start, end) or, when end < start, wrapping past
-- midnight: the rule of send_window.is_open, evaluated by the database for every row at once.
CASE WHEN %(window_start)s::time < %(window_end)s::time
    THEN wall.t >= %(window_start)s::time AND wall.t < %(window_end)s::time
    ELSE wall.t >= %(window_start)s::time OR wall.t < %(window_end)s::time
END

-- name: cancel_ineligible_in_batch
-- Checked again at the claim: a number suppressed, or a consent revoked, after the plan (and
-- before any change cancelled the message) never gets a request. SKIP LOCKED as the claim.
WITH ineligible AS (
    SELECT m.id, {ineligible_kind} AS kind FROM messages m
    JOIN clients c ON c.id = m.client_id
    LEFT JOIN suppressions s ON s.phone = c.phone
    WHERE {due_in_batch} AND {ineligible}
    ORDER BY m.id
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET status = {status.cancelled}, leased_until = NULL, error_kind = ineligible.kind,
    last_error = CASE WHEN ineligible.kind = {error_kind.suppressed} THEN 'phone on the suppression list'
                      ELSE 'client without consent to advertising' END
FROM ineligible
WHERE m.id = ineligible.id AND m.status = {status.pending}

-- name: lease_claimable
-- What a claim writes and returns, whichever messages it found claimable: the lease, one more
-- attempt, and what sending needs of the message and its client. The client's attributes only
-- for a personalised text: a plain one never reads them, so no row pays for decoding them.
UPDATE messages m
SET leased_until = now() + make_interval(secs => %(lease_s)s), attempts = m.attempts + 1
FROM claimable, clients c
WHERE m.id = claimable.id AND c.id = m.client_id
RETURNING m.id, m.client_id, c.phone, m.attempts, c.timezone, c.operator_code, m.provider, c.tag,
          CASE WHEN %(with_attributes)s THEN c.attributes END AS attributes

-- name: claim
-- SKIP LOCKED: a twin run of the same batch moves on instead of queueing behind this one.
WITH claimable AS (
    SELECT m.id FROM messages m
    WHERE {due_in_batch}
    FOR UPDATE OF m SKIP LOCKED
)
{lease_claimable}

-- name: claim_in_window
-- A windowed mailing claims only the messages whose client's window is open right now.
WITH claimable AS (
    SELECT m.id FROM messages m JOIN clients c ON c.id = m.client_id {wall_time}
    WHERE {due_in_batch} AND {window_open}
    FOR UPDATE OF m SKIP LOCKED
)
{lease_claimable}

-- name: record_answers
-- 'sent' wins over a cancellation or expiry that landed while the request was in flight: the
-- provider did accept it. Every other outcome only applies to a message still pending.
-- `encoding` and `parts` are those of the text the request carried (its client's own, for a
-- personalised text): what `parts_sent` and the rate budget count.
-- `sent_at` is when the provider's answer arrived, not when it is written.
WITH locked AS (SELECT id FROM messages WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE)
UPDATE messages m
SET status = r.status,
    sent_at = CASE WHEN r.status = {status.sent} THEN r.answered_at ELSE m.sent_at END,
    last_error = CASE WHEN r.unattempted AND r.error IS NULL THEN m.last_error ELSE r.error END,
    error_kind = CASE WHEN r.unattempted AND r.error IS NULL THEN m.error_kind ELSE r.error_kind END,
    due_at = coalesce(r.due_at, m.due_at),
    attempts = CASE WHEN r.unattempted THEN greatest(m.attempts - 1, 0) ELSE m.attempts END,
    provider = CASE WHEN r.unattempted THEN m.provider ELSE r.provider END,
    provider_message_id = CASE WHEN r.status = {status.sent} THEN r.provider_message_id ELSE m.provider_message_id END,
    encoding = coalesce(r.encoding, m.encoding),
    parts = coalesce(r.parts, m.parts),
    leased_until = NULL
FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(errors)s::text[], %(error_kinds)s::text[],
            %(due_ats)s::timestamptz[], %(answered_ats)s::timestamptz[], %(unattempted)s::boolean[],
            %(providers)s::text[], %(provider_message_ids)s::text[], %(encodings)s::text[], %(parts)s::int[])
     AS r(id, status, error, error_kind, due_at, answered_at, unattempted, provider, provider_message_id,
          encoding, parts), locked
WHERE m.id = r.id AND locked.id = r.id
  AND (m.status = {status.pending} OR (r.status = {status.sent} AND m.status <> {status.sent}))

-- name: expire_in_batch
WITH locked AS (
    SELECT id FROM messages WHERE id = ANY(%(ids)s) AND status = {status.pending} ORDER BY id FOR UPDATE
)
UPDATE messages m
SET status = {status.expired}, leased_until = NULL,
    last_error = coalesce(%(reason)s, m.last_error), error_kind = {error_kind.deadline}
FROM locked
WHERE m.id = locked.id AND m.status = {status.pending}

-- name: expire_overdue
-- Messages of ended mailings that no batch settled (a worker was down). SKIP LOCKED: rows a
-- batch is writing right now are that batch's to settle, or the next sweep's. A message that
-- had failed before keeps that error; one never tried is expired by the deadline.
WITH overdue AS (
    SELECT m.id FROM messages m JOIN mailings g ON g.id = m.mailing_id
    WHERE g.end_at <= now() AND m.status = {status.pending}
    ORDER BY m.id
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET status = {status.expired}, leased_until = NULL,
    last_error = coalesce(m.last_error, 'end_at passed before it could be sent'),
    error_kind = coalesce(m.error_kind, {error_kind.deadline})
FROM overdue
WHERE m.id = overdue.id

-- name: give_back_unsent
-- Claimed by a batch that stopped before sending them: free again, the claim's attempt undone.
WITH locked AS (
    SELECT id FROM messages WHERE id = ANY(%(ids)s) AND status = {status.pending} ORDER BY id FOR UPDATE
)
UPDATE messages m SET leased_until = NULL, attempts = greatest(m.attempts - 1, 0)
FROM locked WHERE m.id = locked.id

-- name: renew_leases
-- Only leases still running are renewed: one that ran out may already be a twin batch's.
WITH locked AS (
    SELECT id FROM messages
    WHERE id = ANY(%(ids)s) AND status = {status.pending} AND leased_until > now()
    ORDER BY id FOR UPDATE SKIP LOCKED
)
UPDATE messages m SET leased_until = now() + make_interval(secs => %(lease_s)s)
FROM locked WHERE m.id = locked.id

-- name: purge_batch
-- Retention: a bounded batch of an ended mailing's messages deleted, in id order as every writer
-- of messages locks them; a row some other transaction holds waits for the next batch.
WITH doomed AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND id > %(after)s
    ORDER BY id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM messages m USING doomed WHERE m.id = doomed.id RETURNING m.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone
