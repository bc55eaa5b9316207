-- Storing delivery receipts and the periodic upkeep of their tables, loaded once by store.py (notation:
-- notification.lib.sql). The rule deciding a message from its parts' receipts is the database
-- function decide_delivery_states (migration 0023), which every path here ends with.

-- name: plan_for_lookups
-- Every statement of a batch finds its rows by index (receipts by SMSC id, messages by id); with
-- statistics that know nothing yet of a mailing just sent, the planner took a scan of the whole
-- table for cheaper. JIT, misled by the same estimates, spent tens of milliseconds compiling
-- statements that run in a few.
SET LOCAL enable_seqscan = off; SET LOCAL jit = off

-- name: find_parts
-- The messages an SMSC's receipts name, by the id of any of their parts: one probe of the GIN index
-- over string_to_array(provider_message_id, ',') per receipt. OFFSET 0 keeps the lookup a
-- subquery run once per receipt: flattened into a join, and with statistics that know nothing yet
-- of the ids a mailing's sends just wrote, the planner read the whole table once per receipt.
SELECT r.part_id, f.id AS message_id
FROM unnest(%(part_ids)s::text[]) AS r(part_id)
CROSS JOIN LATERAL (
    SELECT m.id FROM messages m
    WHERE string_to_array(m.provider_message_id, ',') @> ARRAY[r.part_id] AND m.provider = %(provider)s
    OFFSET 0
) f

-- name: lock_messages
-- The messages receipts name, locked in id order as every writer of messages locks them: two
-- batches holding receipts of parts of one message then decide it one after the other, the second
-- seeing the first's parts.
SELECT id AS message_id, cardinality(string_to_array(provider_message_id, ',')) AS parts,
       delivery_state IN ({delivery_state.delivered}, {delivery_state.undelivered}) AS decided
FROM messages WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE

-- name: store_unmatched
-- The first final receipt of an SMSC id wins; a duplicate changes nothing.
INSERT INTO unmatched_receipts (provider, part_id, state, error)
SELECT %(provider)s, r.part_id, r.state, r.error
FROM unnest(%(part_ids)s::text[], %(states)s::text[], %(errors)s::text[]) AS r(part_id, state, error)
ON CONFLICT (provider, part_id) DO NOTHING

-- name: store_parts
INSERT INTO receipt_parts (message_id, part_id, parts, state, error)
SELECT r.message_id, r.part_id, r.parts, r.state, r.error
FROM unnest(%(message_ids)s::bigint[], %(part_ids)s::text[], %(parts)s::int[], %(states)s::text[],
            %(errors)s::text[]) AS r(message_id, part_id, parts, state, error)
ON CONFLICT (message_id, part_id) DO NOTHING

-- name: decide
SELECT message_id, delivery_state, seconds_after_sent FROM decide_delivery_states(%(ids)s::bigint[])

-- name: set_states
-- Receipts of single-part messages decide them as they are, without a stop in receipt_parts.
SELECT message_id, delivery_state, seconds_after_sent
FROM set_delivery_states(%(ids)s::bigint[], %(states)s::text[], %(errors)s::text[])

-- name: match_waiting
-- Receipts that overtook their SMSC id's write and whose write committed while the receipt's own
-- transaction was still open (the trigger of migration 0023 saw no receipt, the receipt no id):
-- moved to their message's parts now, every one that has a message by now.
WITH found AS (
    SELECT u.provider, u.part_id, f.id AS message_id, f.parts
    FROM unmatched_receipts u
    CROSS JOIN LATERAL (
        SELECT m.id, cardinality(string_to_array(m.provider_message_id, ',')) AS parts FROM messages m
        WHERE string_to_array(m.provider_message_id, ',') @> ARRAY[u.part_id::text] AND m.provider = u.provider
        OFFSET 0
    ) f
    ORDER BY f.id
    FOR UPDATE OF u SKIP LOCKED
)
SELECT move_waiting_receipts(array_agg(provider), array_agg(part_id), array_agg(message_id), array_agg(parts)) AS ids
FROM found

-- name: any_waiting
SELECT EXISTS (SELECT 1 FROM unmatched_receipts) AS waiting

-- name: forget_orphans
-- Parts of messages deleted before they were decided (their mailing or retention took them).
DELETE FROM receipt_parts p WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = p.message_id)

-- name: forget_stale_unmatched
-- A receipt whose id no message got within the receipt timeout never will (its submit's answer
-- was lost, so the SMSC id was never written).
DELETE FROM unmatched_receipts WHERE received_at < now() - make_interval(secs => %(timeout_s)s)

-- name: mark_unknown
-- Sent longer ago than the receipt timeout with no receipt: unknown, a bounded batch at a time,
-- in id order; rows a writer holds wait for the next run.
WITH overdue AS (
    SELECT id FROM messages
    WHERE status = {status.sent} AND delivery_state IS NULL
      AND sent_at < now() - make_interval(secs => %(timeout_s)s)
    ORDER BY id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
UPDATE messages m SET delivery_state = {delivery_state.unknown}, receipt_at = now()
FROM overdue WHERE m.id = overdue.id
