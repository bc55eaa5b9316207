"""Providers and routes as data: the providers an administrator manages while the service runs,
the ordered rules that route messages to them, and the provider of each message's last attempt.

``provider_config_version`` is bumped by statement-level triggers on both tables, so that a worker
learns of any change with one cheap read and rebuilds only then. The two new message columns are
nullable with no default: adding them rewrites nothing.

Revision ID: 0020
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0013"
branch_labels = None
depends_on = None

_BUMP_FUNCTION = """
CREATE FUNCTION bump_provider_config_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE provider_config_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("settings", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("rate_limit", sa.Double(), nullable=True),
        sa.Column("concurrency", sa.Integer(), server_default="200", nullable=False),
        sa.Column("window_size", sa.Integer(), server_default="10", nullable=False),
        sa.Column("binds", sa.Integer(), server_default="1", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('http', 'smpp')", name="ck_providers_kind_known"),
        sa.CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name="ck_providers_rate_limit_positive"),
        sa.CheckConstraint("concurrency >= 1 AND window_size >= 1 AND binds >= 1", name="ck_providers_limits_positive"),
        sa.UniqueConstraint("name", name="uq_providers_name"),
    )
    op.create_table(
        "provider_routes",
        sa.Column("position", sa.Integer(), autoincrement=False, primary_key=True),
        sa.Column("operator_codes", postgresql.ARRAY(sa.String(8)), nullable=True),
        sa.Column("phone_prefixes", postgresql.ARRAY(sa.String(16)), nullable=True),
        sa.Column("providers", postgresql.ARRAY(sa.String(64)), nullable=False),
    )
    op.create_table(
        "provider_config_version",
        sa.Column("id", sa.Integer(), autoincrement=False, primary_key=True),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name="ck_provider_config_version_single_row"),
    )
    op.execute("INSERT INTO provider_config_version (id, version) VALUES (1, 0)")
    op.execute(_BUMP_FUNCTION)
    for table in ("providers", "provider_routes"):
        op.execute(
            f"CREATE TRIGGER {table}_bump_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION bump_provider_config_version()"
        )
    op.add_column("messages", sa.Column("provider", sa.String(64), nullable=True))
    op.add_column("messages", sa.Column("provider_message_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "provider_message_id")
    op.drop_column("messages", "provider")
    op.drop_table("provider_routes")
    op.drop_table("providers")
    op.execute("DROP FUNCTION bump_provider_config_version()")
    op.drop_table("provider_config_version")
