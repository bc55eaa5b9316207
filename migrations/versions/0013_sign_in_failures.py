"""Failed sign-ins counted per client address and window, shared by every API process: wrong API
tokens and refused console sign-ins are slowed once an address passes its allowance.

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0013"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("window_started_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("failures >= 0", name="failures_not_negative"),
    )
    # Old windows are swept by their start.
    op.create_index("ix_sign_in_failures_window_started_at", "sign_in_failures", ["window_started_at"])


def downgrade() -> None:
    op.drop_table("sign_in_failures")
