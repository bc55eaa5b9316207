"""client directory, mailings and messages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:23:47.686087
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op


sa.DateTimeUTC = DateTimeUTC  # type: ignore[attr-defined]

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("operator_code", sa.String(length=3), nullable=False),
        sa.Column("tag", sa.String(length=100), server_default="", nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("operator_code ~ '^[0-9]{3}$'", name=op.f("ck_clients_operator_code_format")),
        sa.CheckConstraint("phone ~ '^7[0-9]{10}$'", name=op.f("ck_clients_phone_format")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("phone", name=op.f("uq_clients_phone")),
    )
    op.create_index("ix_clients_operator_code_tag", "clients", ["operator_code", "tag"], unique=False)
    op.create_index("ix_clients_tag", "clients", ["tag"], unique=False)
    op.create_table(
        "mailings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("end_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("filter_operator_codes", sa.ARRAY(sa.String(length=3)), server_default="{}", nullable=False),
        sa.Column("filter_tags", sa.ARRAY(sa.String(length=100)), server_default="{}", nullable=False),
        sa.Column("send_window_start", sa.Time(), nullable=True),
        sa.Column("send_window_end", sa.Time(), nullable=True),
        sa.Column("plan_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("planned_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("planned_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL) AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name=op.f("ck_mailings_send_window_complete"),
        ),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 1600", name=op.f("ck_mailings_text_length")),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_mailings_ends_after_start")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailings")),
    )
    op.create_index(op.f("ix_mailings_end_at"), "mailings", ["end_at"], unique=False)
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False, start=1, increment=1), nullable=False),
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("due_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("leased_until", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sent_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'expired', 'cancelled')", name=op.f("ck_messages_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_messages_client_id_clients"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["mailing_id"], ["mailings.id"], name=op.f("fk_messages_mailing_id_mailings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("mailing_id", "client_id", name="uq_messages_mailing_client"),
    )
    op.create_index("ix_messages_client_id", "messages", ["client_id"], unique=False)
    op.create_index("ix_messages_mailing_id_status", "messages", ["mailing_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_mailing_id_status", table_name="messages")
    op.drop_index("ix_messages_client_id", table_name="messages")
    op.drop_table("messages")
    op.drop_index(op.f("ix_mailings_end_at"), table_name="mailings")
    op.drop_table("mailings")
    op.drop_index("ix_clients_tag", table_name="clients")
    op.drop_index("ix_clients_operator_code_tag", table_name="clients")
    op.drop_table("clients")
