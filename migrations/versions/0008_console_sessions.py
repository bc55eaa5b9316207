"""Console sessions, and indexes that read the console's client search in its order.

Measured with bench/console.py (1,000,000 clients): a search for an operator code and tag that
no client has walked the primary key from the newest client down, 300 ms, and a phone prefix
of old clients 390 ms; each filter column's index now ends with the id, and a phone search is
read in phone order, so a page reads about its own rows. (tag, id) replaces (tag): it serves
every query the other did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("session_id", name="uq_console_sessions_session_id"),
    )
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"], unique=False)
    op.drop_index("ix_clients_tag", table_name="clients")
    op.create_index("ix_clients_tag_id", "clients", ["tag", "id"], unique=False)
    op.create_index("ix_clients_operator_code_id", "clients", ["operator_code", "id"], unique=False)
    op.create_index("ix_clients_timezone_id", "clients", ["timezone", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_clients_timezone_id", table_name="clients")
    op.drop_index("ix_clients_operator_code_id", table_name="clients")
    op.drop_index("ix_clients_tag_id", table_name="clients")
    op.create_index("ix_clients_tag", "clients", ["tag"], unique=False)
    op.drop_index(op.f("ix_console_sessions_expires_at"), table_name="console_sessions")
    op.drop_table("console_sessions")
