"""Room on every page of messages for its updates to stay HOT.

Each message is updated at least twice (claimed, then answered); with full pages every update
also writes new entries into all four indexes of the table. Leaving 30 % of a page free lets
the claim, which touches no indexed column, update in place.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE messages SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE messages RESET (fillfactor)")
