"""Consent and opt-out: a mailing's kind, a client's consent, the suppression list, inbound messages.

- ``mailings.kind`` and ``schedules.kind``: ``service`` or ``advertising``; every existing one is
  ``service`` (the server default fills them without rewriting a row's other columns).
- ``mailings.left_out_suppressed`` / ``left_out_no_consent``: what each plan left out, and why.
- ``clients.consent_given_at``, ``consent_source``, ``consent_revoked_at``, and a partial index
  over the clients whose consent stands (an advertising audience).
- ``suppressions``: numbers no mailing reaches, keyed by the phone (planning's anti-join probes it).
- ``inbound_messages``: mobile-originated messages, one per provider's own id when it gives one.
- two more error kinds of a cancelled message: ``suppressed`` and ``no_consent``.

Revision ID: 0025
Revises: 0022
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_KINDS_BEFORE = (
    "http_5xx",
    "http_429",
    "http_408",
    "http_4xx",
    "timeout",
    "connection_error",
    "malformed",
    "provider_code",
    "smpp_throttled",
    "smpp_status",
    "smpp_bind",
    "deadline",
    "window_never_opens",
    "cancelled",
    "other",
)
_KINDS_NEW = ("suppressed", "no_consent")
# The order of ErrorKind, so that the constraint reads as the model writes it.
_KINDS_AFTER = (*_KINDS_BEFORE[:-1], *_KINDS_NEW, "other")
_CONSENT_STANDS = "consent_given_at IS NOT NULL AND consent_revoked_at IS NULL"


def _replace_error_kinds(kinds: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_messages_error_kind_known"), "messages", type_="check")
    listed = ", ".join(f"'{k}'" for k in kinds)
    op.create_check_constraint(op.f("ck_messages_error_kind_known"), "messages", f"error_kind IN ({listed})")


def _timestamp(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[sa.DateTime]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.text("now()") if default else None
    )


# A message from a phone that is not a stop word goes to the endpoints that want it, in the
# transaction that stores it; unlike message events it carries the sender and the text, which are
# what a receiver (a support desk, a CRM) acts on.
_FORWARD_INBOUND = """
CREATE FUNCTION webhook_inbound_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT webhook_subscribed(ARRAY['inbound.received']) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (endpoint_id, event_type, subject, payload)
    SELECT e.id, 'inbound.received', 'inbound:' || r.id,
           jsonb_build_object(
               'type', 'inbound.received', 'timestamp', webhook_time(clock_timestamp()),
               'data', jsonb_build_object(
                   'inbound_id', r.id, 'provider', r.provider, 'phone', r.phone, 'text', r.text,
                   'received_at', webhook_time(r.received_at), 'provider_message_id', r.provider_message_id
               )
           )
    FROM received_messages r
    JOIN webhook_endpoints e ON e.enabled AND 'inbound.received' = ANY (e.events::text[])
    WHERE NOT r.stop_word
    ORDER BY r.id, e.id;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    for table in ("mailings", "schedules"):
        op.add_column(table, sa.Column("kind", sa.String(16), server_default="service", nullable=False))
        op.create_check_constraint(op.f(f"ck_{table}_kind_known"), table, "kind IN ('service', 'advertising')")
    op.add_column("mailings", sa.Column("left_out_suppressed", sa.Integer(), nullable=True))
    op.add_column("mailings", sa.Column("left_out_no_consent", sa.Integer(), nullable=True))
    op.add_column("clients", _timestamp("consent_given_at"))
    op.add_column("clients", sa.Column("consent_source", sa.String(200), nullable=True))
    op.add_column("clients", _timestamp("consent_revoked_at"))
    op.create_index("ix_clients_consenting", "clients", ["id"], postgresql_where=sa.text(_CONSENT_STANDS))
    op.create_table(
        "suppressions",
        sa.Column("phone", sa.String(11), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.String(200), server_default="", nullable=False),
        _timestamp("created_at", nullable=False, default=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_suppressions")),
        sa.CheckConstraint(
            "reason IN ('stop_word', 'operator_request', 'complaint', 'invalid_number')",
            name=op.f("ck_suppressions_reason_known"),
        ),
        sa.CheckConstraint(r"phone ~ '^7[0-9]{10}$'", name=op.f("ck_suppressions_phone_format")),
    )
    op.create_index("ix_suppressions_created_at", "suppressions", ["created_at"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _timestamp("received_at", nullable=False),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("stop_word", sa.Boolean(), server_default="false", nullable=False),
        _timestamp("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
    )
    op.create_index(
        "uq_inbound_messages_provider_message",
        "inbound_messages",
        ["provider", "provider_message_id"],
        unique=True,
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_index("ix_inbound_messages_phone_id", "inbound_messages", ["phone", "id"])
    _replace_error_kinds(_KINDS_AFTER)
    op.execute(_FORWARD_INBOUND)
    op.execute(
        "CREATE TRIGGER inbound_messages_webhooked AFTER INSERT ON inbound_messages"
        " REFERENCING NEW TABLE AS received_messages FOR EACH STATEMENT EXECUTE FUNCTION webhook_inbound_inserted()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS inbound_messages_webhooked ON inbound_messages")
    op.execute("DROP FUNCTION IF EXISTS webhook_inbound_inserted()")
    op.execute("UPDATE messages SET error_kind = 'cancelled' WHERE error_kind IN ('suppressed', 'no_consent')")
    _replace_error_kinds(_KINDS_BEFORE)
    op.drop_table("inbound_messages")
    op.drop_table("suppressions")
    op.drop_index("ix_clients_consenting", table_name="clients")
    for column in ("consent_revoked_at", "consent_source", "consent_given_at"):
        op.drop_column("clients", column)
    op.drop_column("mailings", "left_out_no_consent")
    op.drop_column("mailings", "left_out_suppressed")
    for table in ("mailings", "schedules"):
        op.drop_column(table, "kind")
