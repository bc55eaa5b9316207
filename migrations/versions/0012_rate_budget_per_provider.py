"""The provider rate budget keyed by the provider's name, so that a second provider has a limit of
its own: the existing row becomes the default provider's, tokens and hold kept.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFAULT_PROVIDER = "default"
"""The name the registry gives the provider of the NOTIFICATION_PROVIDER_* settings."""


def upgrade() -> None:
    op.add_column("provider_rate_budget", sa.Column("provider", sa.String(length=64), nullable=True))
    op.execute(sa.text("UPDATE provider_rate_budget SET provider = :name").bindparams(name=DEFAULT_PROVIDER))
    op.alter_column("provider_rate_budget", "provider", nullable=False)
    op.drop_constraint(op.f("pk_provider_rate_budget"), "provider_rate_budget", type_="primary")
    op.drop_constraint(op.f("ck_provider_rate_budget_single_row"), "provider_rate_budget", type_="check")
    op.drop_column("provider_rate_budget", "id")
    op.create_primary_key(op.f("pk_provider_rate_budget"), "provider_rate_budget", ["provider"])


def downgrade() -> None:
    # One row again: the default provider's; the others' budgets have nowhere to go.
    op.execute(sa.text("DELETE FROM provider_rate_budget WHERE provider <> :name").bindparams(name=DEFAULT_PROVIDER))
    op.execute(
        sa.text("INSERT INTO provider_rate_budget (provider) VALUES (:name) ON CONFLICT DO NOTHING").bindparams(
            name=DEFAULT_PROVIDER
        )
    )
    op.add_column("provider_rate_budget", sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=True))
    op.execute("UPDATE provider_rate_budget SET id = 1")
    op.alter_column("provider_rate_budget", "id", nullable=False)
    op.drop_constraint(op.f("pk_provider_rate_budget"), "provider_rate_budget", type_="primary")
    op.drop_column("provider_rate_budget", "provider")
    op.create_check_constraint(op.f("ck_provider_rate_budget_single_row"), "provider_rate_budget", "id = 1")
    op.create_primary_key(op.f("pk_provider_rate_budget"), "provider_rate_budget", ["id"])
