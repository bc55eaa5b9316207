"""Operator controls: pausing a mailing, its text's encoding and SMS parts, idempotency keys,
the provider's shared rate budget, the record of test sends, and the clients' filter index
widened by the time zone (an audience preview reads it alone, in order).

The encoding and parts of existing mailings are computed once from their text, with the
service's own counter (the GSM 03.38 tables do not change).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

from notification.mailings.sms import measure

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TEST_SEND_IDS_START = 2**62


def upgrade() -> None:
    op.add_column("mailings", sa.Column("paused_at", DateTimeUTC(timezone=True), nullable=True))
    op.add_column("mailings", sa.Column("encoding", sa.String(length=8), nullable=True))
    op.add_column("mailings", sa.Column("parts", sa.Integer(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, text FROM mailings")).all()
    if rows:
        measured = [measure(text) for _, text in rows]
        connection.execute(
            sa.text(
                "UPDATE mailings g SET encoding = t.encoding, parts = t.parts"
                " FROM unnest(CAST(:ids AS bigint[]), CAST(:encodings AS text[]), CAST(:parts AS int[]))"
                " AS t(id, encoding, parts) WHERE g.id = t.id"
            ),
            {
                "ids": [mailing_id for mailing_id, _ in rows],
                "encodings": [m.encoding.value for m in measured],
                "parts": [m.parts for m in measured],
            },
        )
    op.alter_column("mailings", "encoding", nullable=False)
    op.alter_column("mailings", "parts", nullable=False)
    op.create_check_constraint(op.f("ck_mailings_encoding_known"), "mailings", "encoding IN ('GSM-7', 'UCS-2')")
    op.create_check_constraint(op.f("ck_mailings_parts_positive"), "mailings", "parts >= 1")

    op.create_table(
        "idempotency_keys",
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("route", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)

    op.create_table(
        "provider_rate_budget",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tokens", sa.Double(), server_default="0", nullable=False),
        sa.Column("refilled_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("blocked_until", DateTimeUTC(timezone=True), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_provider_rate_budget_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_rate_budget")),
    )
    op.execute("INSERT INTO provider_rate_budget (id) VALUES (1)")

    op.execute(f"CREATE SEQUENCE test_send_ids START WITH {_TEST_SEND_IDS_START}")
    op.create_table(
        "test_sends",
        sa.Column("id", sa.BigInteger(), server_default=sa.text("nextval('test_send_ids')"), nullable=False),
        sa.Column("mailing_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("answered_at", DateTimeUTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailing_id"], ["mailings.id"], name=op.f("fk_test_sends_mailing_id_mailings"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_sends")),
    )
    op.execute("ALTER SEQUENCE test_send_ids OWNED BY test_sends.id")
    op.create_index(op.f("ix_test_sends_mailing_id"), "test_sends", ["mailing_id"], unique=False)

    op.create_index("ix_clients_operator_code_tag_timezone", "clients", ["operator_code", "tag", "timezone"])
    op.drop_index("ix_clients_operator_code_tag", table_name="clients")


def downgrade() -> None:
    op.create_index("ix_clients_operator_code_tag", "clients", ["operator_code", "tag"])
    op.drop_index("ix_clients_operator_code_tag_timezone", table_name="clients")
    op.drop_index(op.f("ix_test_sends_mailing_id"), table_name="test_sends")
    op.drop_table("test_sends")
    op.execute("DROP SEQUENCE IF EXISTS test_send_ids")
    op.drop_table("provider_rate_budget")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_constraint(op.f("ck_mailings_parts_positive"), "mailings", type_="check")
    op.drop_constraint(op.f("ck_mailings_encoding_known"), "mailings", type_="check")
    op.drop_column("mailings", "parts")
    op.drop_column("mailings", "encoding")
    op.drop_column("mailings", "paused_at")
