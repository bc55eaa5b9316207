"""Webhooks: endpoints, their outbox, and the triggers that fill it in the transaction of each change.

- ``webhook_endpoints``: a URL, its signing secret (sealed with ``NOTIFICATION_SECRET_KEY``), the
  events it wants, and how its deliveries fare (failing since, failures in a row, its backoff).
- ``webhook_outbox``: one row per event and endpoint, delivered in id order per subject
  (``message:<id>``, ``mailing:<id>``).
- Statement-level triggers: on ``messages`` (a status becoming sent, failed or expired; a mailing's
  last pending message settled) and on ``mailings`` (its first plan: started, and finished when the
  plan left nothing pending; a pause). Each first asks whether any enabled endpoint wants one of
  its events: with none, that one look at a table of a few rows is all a statement pays.
- ``webhook_enqueue_message_events(ids, types)`` writes message events; a later trigger on another
  column (the delivery state) adds its events by calling it, without touching these.

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_EVENTS = (
    "message.sent",
    "message.delivered",
    "message.undelivered",
    "message.failed",
    "message.expired",
    "mailing.started",
    "mailing.paused",
    "mailing.finished",
    "inbound.received",
)
_EVENT_LIST = ", ".join(f"'{e}'" for e in _EVENTS)

_FUNCTIONS = (
    """
CREATE FUNCTION webhook_subscribed(wanted text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled AND events::text[] && wanted)
$$
""",
    # Times in the payload are UTC whatever the writing session's TimeZone.
    """
CREATE FUNCTION webhook_time(at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$
""",
    """
CREATE FUNCTION webhook_message_data(m messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'message_id', m.id,
        'mailing_id', m.mailing_id,
        'client_id', m.client_id,
        'status', m.status,
        'attempts', m.attempts,
        'error_kind', CASE WHEN m.status <> 'sent' THEN m.error_kind END,
        'error', CASE WHEN m.status <> 'sent' THEN m.last_error END,
        'provider', m.provider,
        'provider_message_id', m.provider_message_id,
        'sent_at', webhook_time(m.sent_at),
        'encoding', m.encoding,
        'parts', m.parts,
        'delivery_state', m.delivery_state,
        'delivery_error', m.delivery_error,
        'receipt_at', webhook_time(m.receipt_at)
    )
$$
""",
    """
CREATE FUNCTION webhook_mailing_data(for_mailing bigint, mailing_status text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'mailing_id', g.id,
        'status', mailing_status,
        'start_at', webhook_time(g.start_at),
        'end_at', webhook_time(g.end_at),
        'planned_at', webhook_time(g.planned_at),
        'paused_at', webhook_time(g.paused_at),
        'schedule_id', g.schedule_id
    )
    FROM mailings g WHERE g.id = for_mailing
$$
""",
    # Rows are numbered in the order given, so the outbox ids keep it; one row per endpoint wanting it.
    """
CREATE FUNCTION webhook_enqueue_message_events(message_ids bigint[], event_types text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload)
    SELECT e.id, c.event_type, 'message:' || m.id,
           jsonb_build_object(
               'type', c.event_type, 'timestamp', webhook_time(clock_timestamp()), 'data', webhook_message_data(m)
           )
    FROM unnest(message_ids, event_types) WITH ORDINALITY AS c (message_id, event_type, position)
    JOIN messages m ON m.id = c.message_id
    JOIN webhook_endpoints e ON e.enabled AND c.event_type = ANY (e.events::text[])
    ORDER BY c.position, e.id
$$
""",
    # Two transactions settling the last pending messages of one mailing at once would each see the
    # other's as still pending, and neither would tell that it finished. Each takes the mailing's
    # lock first; the second then looks with the first's change committed. Only with a subscriber.
    """
CREATE FUNCTION webhook_enqueue_finished(mailing_ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    mailing bigint;
BEGIN
    IF NOT webhook_subscribed(ARRAY['mailing.finished']) THEN
        RETURN;
    END IF;
    FOR mailing IN SELECT DISTINCT g FROM unnest(mailing_ids) AS g ORDER BY g LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('webhook mailing finished', mailing));
    END LOOP;
    INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload)
    SELECT e.id, 'mailing.finished', 'mailing:' || g.id,
           jsonb_build_object(
               'type', 'mailing.finished', 'timestamp', webhook_time(clock_timestamp()),
               'data', webhook_mailing_data(g.id, 'finished')
           )
    FROM mailings g
    JOIN webhook_endpoints e ON e.enabled AND 'mailing.finished' = ANY (e.events::text[])
    WHERE g.id = ANY (mailing_ids)
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.status = 'pending')
    ORDER BY g.id, e.id;
END
$$
""",
    """
CREATE FUNCTION webhook_messages_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    types text[];
    settled bigint[];
BEGIN
    IF NOT webhook_subscribed(ARRAY['message.sent', 'message.failed', 'message.expired', 'mailing.finished']) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(n.id ORDER BY n.id) FILTER (WHERE n.status IN ('sent', 'failed', 'expired')),
           array_agg('message.' || n.status ORDER BY n.id) FILTER (WHERE n.status IN ('sent', 'failed', 'expired')),
           array_agg(DISTINCT n.mailing_id) FILTER (WHERE o.status = 'pending')
    INTO ids, types, settled
    FROM updated_messages n JOIN replaced_messages o ON o.id = n.id
    WHERE n.status <> o.status;
    IF ids IS NOT NULL THEN
        PERFORM webhook_enqueue_message_events(ids, types);
    END IF;
    IF settled IS NOT NULL THEN
        PERFORM webhook_enqueue_finished(settled);
    END IF;
    RETURN NULL;
END
$$
""",
    # Messages are born pending, except those of a mailing planned past its last moment: expired.
    """
CREATE FUNCTION webhook_messages_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    types text[];
BEGIN
    IF NOT webhook_subscribed(ARRAY['message.sent', 'message.failed', 'message.expired']) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(n.id ORDER BY n.id), array_agg('message.' || n.status ORDER BY n.id)
    INTO ids, types
    FROM inserted_messages n
    WHERE n.status IN ('sent', 'failed', 'expired');
    IF ids IS NOT NULL THEN
        PERFORM webhook_enqueue_message_events(ids, types);
    END IF;
    RETURN NULL;
END
$$
""",
    # Started is a mailing's first plan (the moment the service starts it, at or after start_at);
    # a plan that left nothing pending (nobody matched, or every message expired) also finishes it.
    """
CREATE FUNCTION webhook_mailings_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT webhook_subscribed(ARRAY['mailing.started', 'mailing.paused', 'mailing.finished']) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload)
    SELECT e.id, c.event_type, 'mailing:' || c.id,
           jsonb_build_object(
               'type', c.event_type, 'timestamp', webhook_time(clock_timestamp()),
               'data', webhook_mailing_data(c.id, c.status)
           )
    FROM (
        SELECT n.id, 'mailing.started' AS event_type, 'running' AS status, 1 AS rank
        FROM changed_mailings n JOIN unchanged_mailings o ON o.id = n.id
        WHERE o.planned_at IS NULL AND n.planned_at IS NOT NULL
        UNION ALL
        SELECT n.id, 'mailing.paused', 'paused', 2
        FROM changed_mailings n JOIN unchanged_mailings o ON o.id = n.id
        WHERE o.paused_at IS NULL AND n.paused_at IS NOT NULL
        UNION ALL
        SELECT n.id, 'mailing.finished', 'finished', 3
        FROM changed_mailings n JOIN unchanged_mailings o ON o.id = n.id
        WHERE o.planned_at IS NULL AND n.planned_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = n.id AND m.status = 'pending')
    ) c
    JOIN webhook_endpoints e ON e.enabled AND c.event_type = ANY (e.events::text[])
    ORDER BY c.id, c.rank, e.id;
    RETURN NULL;
END
$$
""",
    # A receipt's verdict, in the statement that stores it; the trigger's name sorts after the
    # status trigger's, so that a message a receipt also makes sent tells sent before delivered.
    """
CREATE FUNCTION webhook_messages_receipted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    types text[];
BEGIN
    IF NOT webhook_subscribed(ARRAY['message.delivered', 'message.undelivered']) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(n.id ORDER BY n.id), array_agg('message.' || n.delivery_state ORDER BY n.id)
    INTO ids, types
    FROM updated_messages n JOIN replaced_messages o ON o.id = n.id
    WHERE n.delivery_state IS DISTINCT FROM o.delivery_state AND n.delivery_state IN ('delivered', 'undelivered');
    IF ids IS NOT NULL THEN
        PERFORM webhook_enqueue_message_events(ids, types);
    END IF;
    RETURN NULL;
END
$$
""",
)

_TRIGGERS = (
    "CREATE TRIGGER messages_webhooked_on_update AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION webhook_messages_updated()",
    "CREATE TRIGGER messages_webhooked_on_update_receipt AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION webhook_messages_receipted()",
    "CREATE TRIGGER messages_webhooked_on_insert AFTER INSERT ON messages"
    " REFERENCING NEW TABLE AS inserted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION webhook_messages_inserted()",
    "CREATE TRIGGER mailings_webhooked_on_update AFTER UPDATE ON mailings"
    " REFERENCING OLD TABLE AS unchanged_mailings NEW TABLE AS changed_mailings"
    " FOR EACH STATEMENT EXECUTE FUNCTION webhook_mailings_updated()",
)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(200), server_default="", nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("failing_since", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_success_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("disabled_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            f"events <@ ARRAY[{_EVENT_LIST}]::varchar[] AND cardinality(events) >= 1",
            name="ck_webhook_endpoints_events_known",
        ),
        sa.CheckConstraint("url ~ '^https?://'", name="ck_webhook_endpoints_url_http"),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "webhook_endpoints.id", name="fk_webhook_outbox_endpoint_id_webhook_endpoints", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(48), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("next_attempt_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("leased_until", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", DateTimeUTC(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_webhook_outbox_undelivered",
        "webhook_outbox",
        ["endpoint_id", "id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index(
        "ix_webhook_outbox_subject",
        "webhook_outbox",
        ["endpoint_id", "subject", "id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index(
        "ix_webhook_outbox_next_attempt_at",
        "webhook_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index("ix_webhook_outbox_endpoint_id_id", "webhook_outbox", ["endpoint_id", "id"])
    op.create_index("ix_webhook_outbox_created_at", "webhook_outbox", ["created_at"])
    for function in _FUNCTIONS:
        op.execute(function)
    for trigger in _TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS mailings_webhooked_on_update ON mailings")
    op.execute("DROP TRIGGER IF EXISTS messages_webhooked_on_insert ON messages")
    op.execute("DROP TRIGGER IF EXISTS messages_webhooked_on_update ON messages")
    op.execute("DROP TRIGGER IF EXISTS messages_webhooked_on_update_receipt ON messages")
    for signature in (
        "webhook_mailings_updated()",
        "webhook_messages_receipted()",
        "webhook_messages_inserted()",
        "webhook_messages_updated()",
        "webhook_enqueue_finished(bigint[])",
        "webhook_enqueue_message_events(bigint[], text[])",
        "webhook_mailing_data(bigint, text)",
        "webhook_message_data(messages)",
        "webhook_time(timestamptz)",
        "webhook_subscribed(text[])",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.drop_table("webhook_outbox")
    op.drop_table("webhook_endpoints")
