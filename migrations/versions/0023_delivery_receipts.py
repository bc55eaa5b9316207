"""Delivery receipts: what reached the phone, beside what the provider accepted.

- ``messages.delivery_state`` (``delivered``, ``undelivered``, ``unknown``; NULL until a receipt or
  the receipt timeout decides), ``delivery_error`` (the SMSC's or provider's error code) and
  ``receipt_at`` (when the deciding receipt was stored, by the database's clock). Nullable, no
  default: adding them rewrites nothing.
- ``ix_messages_provider_part_ids``: a GIN index over the SMSC ids a message's parts got
  (``provider_message_id`` is their comma-joined list), so that a receipt naming any part finds its
  message with one index probe.
- ``ix_messages_awaiting_receipt``: sent messages with no delivery state yet, by ``sent_at``: what
  the receipt timeout marks ``unknown``, found without reading the delivered ones.
- ``unmatched_receipts``: final receipts naming an SMSC id no message carries yet (a receipt that
  overtook its ``submit_sm_resp``'s write). A statement trigger on ``messages`` applies them as soon
  as a write stores a matching id; a periodic sweep catches the ones whose receipt and write
  committed at the same moment, each unseen by the other.
- ``receipt_parts``: the final receipts of a message's parts while its state is undecided (a long
  text waits for all of its parts); a message's rows go once it is decided. No foreign key: a
  mailing's deletion would pay a probe per message for a table that is nearly always empty; the
  sweep removes the rows of messages gone.
- ``set_delivery_states(ids, states, errors)``: what a receipt writes (and the one rule that a
  decided message never changes), and ``decide_delivery_states(ids)``: a message of several parts
  decided from its parts (any part undelivered: undelivered; every part delivered: delivered),
  used by the ingestion, the trigger and the sweep alike.
- ``message_delivery_counts``: messages per mailing and delivery state, kept by statement-level
  triggers exactly as the counters of revisions 0010 and 0021 are (same shards, fold, deletion and
  retention rules).
- ``providers.callback_secret``: the secret an HTTP provider signs its receipt callbacks with,
  encrypted like ``secret``.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_COUNTED = "delivery_state IS NOT NULL"

_UPSERT = """
    ON CONFLICT (mailing_id, delivery_state, shard) DO UPDATE
    SET messages = d.messages + excluded.messages;
"""

_INSERT_FUNCTION = f"""
CREATE FUNCTION count_inserted_message_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_delivery_counts AS d (mailing_id, delivery_state, shard, messages)
    SELECT mailing_id, delivery_state, counter_shard(), count(*)
    FROM inserted_messages
    WHERE {_COUNTED}
    GROUP BY 1, 2
    ORDER BY 1, 2
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# A statement that changes no delivery state (every claim, answer and lease renewal) writes nothing.
_UPDATE_FUNCTION = f"""
CREATE FUNCTION count_updated_message_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_delivery_counts AS d (mailing_id, delivery_state, shard, messages)
    SELECT c.mailing_id, c.delivery_state, counter_shard(), sum(c.messages)
    FROM (
        SELECT mailing_id, delivery_state, 1 AS messages FROM updated_messages WHERE {_COUNTED}
        UNION ALL
        SELECT mailing_id, delivery_state, -1 FROM replaced_messages WHERE {_COUNTED}
    ) c
    GROUP BY c.mailing_id, c.delivery_state
    HAVING sum(c.messages) <> 0
    ORDER BY 1, 2
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

_DELETE_FUNCTION = f"""
CREATE FUNCTION count_deleted_message_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_delivery_counts AS d (mailing_id, delivery_state, shard, messages)
    SELECT c.mailing_id, c.delivery_state, counter_shard(), -c.messages
    FROM (
        SELECT mailing_id, delivery_state, count(*) AS messages
        FROM deleted_messages WHERE {_COUNTED}
        GROUP BY 1, 2
    ) c
    JOIN mailings g ON g.id = c.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

_TRUNCATE_FUNCTION = """
CREATE FUNCTION count_truncated_message_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_delivery_counts d USING mailings g
    WHERE g.id = d.mailing_id AND g.messages_purged_at IS NULL;
    RETURN NULL;
END
$$
"""

# What a receipt writes, in one place. A message already decided (delivered or undelivered) is
# left as it is: a duplicate or a late receipt changes nothing; `unknown` (the timeout's guess)
# gives way to a receipt. A receipt also proves the provider accepted the message: one the ledger
# recorded otherwise (its request timed out, so it expired or was still being retried) becomes
# `sent`, at the receipt's time or its mailing's end, whichever is earlier (the acceptance happened
# while a request was in flight, and none is in flight after the end).
_SET_FUNCTION = """
CREATE FUNCTION set_delivery_states(ids bigint[], states text[], errors text[])
RETURNS TABLE (message_id bigint, delivery_state text, seconds_after_sent double precision)
LANGUAGE sql AS $$
WITH locked AS (
    -- Each receipt beside its message, found by id, in one pass: joined in the UPDATE below, an
    -- unnest taken for 10 rows was scanned again for every message (2,000 receipts: 1.4 s).
    SELECT r.id, r.state, r.error
    FROM unnest(ids, states, errors) AS r(id, state, error)
    JOIN messages m ON m.id = r.id
    WHERE m.delivery_state IS NULL OR m.delivery_state = 'unknown'
    ORDER BY r.id
    FOR UPDATE OF m
)
UPDATE messages m
SET delivery_state = l.state, delivery_error = l.error, receipt_at = now(),
    status = 'sent',
    sent_at = CASE WHEN m.status = 'sent' THEN m.sent_at ELSE least(now(), g.end_at) END,
    last_error = CASE WHEN m.status = 'sent' THEN m.last_error END,
    error_kind = CASE WHEN m.status = 'sent' THEN m.error_kind END,
    leased_until = NULL
FROM locked l, mailings g
WHERE m.id = l.id AND g.id = m.mailing_id
RETURNING m.id, m.delivery_state, extract(epoch FROM m.receipt_at - m.sent_at)::double precision
$$
"""

# A message of several parts, from its parts' receipts: any part undelivered makes it undelivered
# (with the first such part's error); all of its parts delivered make it delivered; until then it
# waits, and its parts' rows stay.
_DECIDE_FUNCTION = """
CREATE FUNCTION decide_delivery_states(ids bigint[])
RETURNS TABLE (message_id bigint, delivery_state text, seconds_after_sent double precision)
LANGUAGE sql AS $$
WITH decided AS (
    SELECT p.message_id,
           CASE WHEN bool_or(p.state = 'undelivered') THEN 'undelivered'
                WHEN count(*) FILTER (WHERE p.state = 'delivered') >= max(p.parts) THEN 'delivered'
           END AS state,
           (array_agg(p.error ORDER BY p.received_at, p.part_id) FILTER (WHERE p.state = 'undelivered'))[1]
               AS error
    FROM receipt_parts p
    WHERE p.message_id = ANY(ids)
    GROUP BY p.message_id
), forgotten AS (
    DELETE FROM receipt_parts p USING decided d
    WHERE p.message_id = d.message_id AND d.state IS NOT NULL
)
SELECT * FROM set_delivery_states(
    ARRAY(SELECT message_id FROM decided WHERE state IS NOT NULL ORDER BY message_id),
    ARRAY(SELECT state FROM decided WHERE state IS NOT NULL ORDER BY message_id),
    ARRAY(SELECT error FROM decided WHERE state IS NOT NULL ORDER BY message_id)
)
$$
"""

# Waiting receipts whose message is found, moved to its parts: one statement of the rule for the
# trigger below and for the worker's sweep (receipts/queries.sql, match_waiting). Returns the
# messages that took a part, for decide_delivery_states.
_MOVE_WAITING_FUNCTION = """
CREATE FUNCTION move_waiting_receipts(providers text[], part_ids text[], message_ids bigint[], parts int[])
RETURNS bigint[]
LANGUAGE sql AS $$
    WITH found AS (
        SELECT * FROM unnest(providers, part_ids, message_ids, parts) AS f(provider, part_id, message_id, parts)
    ), taken AS (
        DELETE FROM unmatched_receipts u USING found f
        WHERE u.provider = f.provider AND u.part_id = f.part_id
        RETURNING u.provider, u.part_id, u.state, u.error, u.received_at
    ), stored AS (
        INSERT INTO receipt_parts (message_id, part_id, parts, state, error, received_at)
        SELECT f.message_id, t.part_id, f.parts, t.state, t.error, t.received_at
        FROM taken t JOIN found f ON f.provider = t.provider AND f.part_id = t.part_id
        ON CONFLICT (message_id, part_id) DO NOTHING
        RETURNING message_id
    )
    SELECT coalesce(array_agg(DISTINCT message_id), '{}') FROM stored
$$
"""

# Receipts that overtook the write of their SMSC id: applied by the statement that writes it.
# Nearly always there are none, and the function ends at its first line.
_APPLY_WAITING_FUNCTION = """
CREATE FUNCTION apply_waiting_receipts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    matched bigint[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unmatched_receipts) THEN
        RETURN NULL;
    END IF;
    SELECT move_waiting_receipts(array_agg(u.provider), array_agg(u.part_id), array_agg(n.id),
                                 array_agg(cardinality(string_to_array(n.provider_message_id, ','))))
    INTO matched
    FROM updated_messages n
    CROSS JOIN LATERAL unnest(string_to_array(n.provider_message_id, ',')) AS part(id)
    -- One probe of the key per part: receipts that never find their message wait here until
    -- the timeout, and a join the planner chose badly made every update of messages pay for them.
    CROSS JOIN LATERAL (
        SELECT u.provider, u.part_id FROM unmatched_receipts u
        WHERE u.provider = n.provider AND u.part_id = part.id
        OFFSET 0
    ) u
    WHERE n.provider_message_id IS NOT NULL;
    IF cardinality(matched) > 0 THEN
        PERFORM * FROM decide_delivery_states(matched);
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER message_deliveries_counted_on_insert AFTER INSERT ON messages"
    " REFERENCING NEW TABLE AS inserted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_message_deliveries()",
    "CREATE TRIGGER message_deliveries_counted_on_update AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_updated_message_deliveries()",
    "CREATE TRIGGER message_deliveries_counted_on_delete AFTER DELETE ON messages"
    " REFERENCING OLD TABLE AS deleted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_message_deliveries()",
    "CREATE TRIGGER message_deliveries_counted_on_truncate AFTER TRUNCATE ON messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_message_deliveries()",
    # Every update, though only the record of answers stores an SMSC id: a trigger with transition
    # tables cannot name columns. The function's first line ends it while nothing waits.
    "CREATE TRIGGER waiting_receipts_applied AFTER UPDATE ON messages"
    " REFERENCING NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION apply_waiting_receipts()",
)

_STATES = "('delivered', 'undelivered', 'unknown')"
_PART_STATES = "('delivered', 'undelivered')"


def upgrade() -> None:
    op.add_column("messages", sa.Column("delivery_state", sa.String(16), nullable=True))
    op.add_column("messages", sa.Column("delivery_error", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("receipt_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_check_constraint(op.f("ck_messages_delivery_state_known"), "messages", f"delivery_state IN {_STATES}")
    op.create_index(
        "ix_messages_provider_part_ids",
        "messages",
        [sa.text("string_to_array(provider_message_id, ',')")],
        postgresql_using="gin",
        # Looked up once per receipt: with the pending list of fastupdate, each lookup scanned up to
        # 4 MB of entries not yet merged (13 ms per lookup instead of 5 us, 85,000 messages sent).
        postgresql_with={"fastupdate": "off"},
    )
    op.create_index(
        "ix_messages_awaiting_receipt",
        "messages",
        ["sent_at"],
        postgresql_where=sa.text("status = 'sent' AND delivery_state IS NULL"),
    )
    op.add_column("providers", sa.Column("callback_secret", sa.Text(), nullable=True))
    op.create_table(
        "unmatched_receipts",
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("part_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"state IN {_PART_STATES}", name=op.f("ck_unmatched_receipts_state_known")),
        sa.PrimaryKeyConstraint("provider", "part_id", name=op.f("pk_unmatched_receipts")),
    )
    op.create_table(
        "receipt_parts",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("part_id", sa.String(128), nullable=False),
        sa.Column("parts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"state IN {_PART_STATES}", name=op.f("ck_receipt_parts_state_known")),
        sa.PrimaryKeyConstraint("message_id", "part_id", name=op.f("pk_receipt_parts")),
    )
    op.create_table(
        "message_delivery_counts",
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_state", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_message_delivery_counts_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", "delivery_state", "shard", name=op.f("pk_message_delivery_counts")),
    )
    for function in (
        _INSERT_FUNCTION,
        _UPDATE_FUNCTION,
        _DELETE_FUNCTION,
        _TRUNCATE_FUNCTION,
        _SET_FUNCTION,
        _DECIDE_FUNCTION,
        _MOVE_WAITING_FUNCTION,
        _APPLY_WAITING_FUNCTION,
    ):
        op.execute(function)
    # Nothing has a delivery state yet: there is nothing to count before the triggers exist.
    for trigger in _TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for trigger in (
        "waiting_receipts_applied",
        "message_deliveries_counted_on_truncate",
        "message_deliveries_counted_on_delete",
        "message_deliveries_counted_on_update",
        "message_deliveries_counted_on_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON messages")
    for function in (
        "apply_waiting_receipts()",
        "move_waiting_receipts(text[], text[], bigint[], integer[])",
        "decide_delivery_states(bigint[])",
        "set_delivery_states(bigint[], text[], text[])",
        "count_truncated_message_deliveries()",
        "count_deleted_message_deliveries()",
        "count_updated_message_deliveries()",
        "count_inserted_message_deliveries()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("message_delivery_counts")
    op.drop_table("receipt_parts")
    op.drop_table("unmatched_receipts")
    op.drop_column("providers", "callback_secret")
    op.drop_index("ix_messages_awaiting_receipt", table_name="messages")
    op.drop_index("ix_messages_provider_part_ids", table_name="messages")
    op.drop_constraint(op.f("ck_messages_delivery_state_known"), "messages", type_="check")
    op.drop_column("messages", "receipt_at")
    op.drop_column("messages", "delivery_error")
    op.drop_column("messages", "delivery_state")
