"""Indexes for one mailing's statistics page at 10 million messages.

Measured with bench/stats.py (10M messages over 100 mailings): a page of a small mailing's
messages walked the primary key from the start, 1.5-1.8 s, and now takes well under 1 ms with
(mailing_id, id); the first and last send times of a 1M-message mailing sorted 800k rows,
0.3-0.6 s, and now read two ends of a partial index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_mailing_id_id", "messages", ["mailing_id", "id"])
    op.create_index(
        "ix_messages_mailing_id_sent_at",
        "messages",
        ["mailing_id", "sent_at"],
        postgresql_where="status = 'sent'",
    )


def downgrade() -> None:
    op.drop_index("ix_messages_mailing_id_sent_at", table_name="messages")
    op.drop_index("ix_messages_mailing_id_id", table_name="messages")
