"""Audiences, the directory's facets, operator code names, and schedules.

``audiences`` are named filters; a mailing points at one (``audience_id``) or carries its own
filter, never both. ``client_facet_counts`` holds the clients of each tag and operator code, kept
by statement-level triggers on ``clients`` (insert, update of either column, delete, truncate) in
the shards of ``counter_shard()``, so the facets are read from a few hundred rows rather than a
scan of the directory. ``operator_code_names`` names codes. ``schedules`` hold a mailing template
and an RFC 5545 rule; each occurrence is a mailing with ``schedule_id`` and ``occurrence_at``,
unique together so that an occurrence is created once however many workers try.

Existing clients are counted once, under a lock that keeps writers out until the commit.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

_FACETS_OF = """
    SELECT 'tag' AS kind, tag AS value, {sign} AS delta FROM {table}
    UNION ALL
    SELECT 'operator_code', operator_code, {sign} FROM {table}
"""

_FACETS_FUNCTION = f"""
CREATE FUNCTION count_client_facets() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM client_facet_counts;
        RETURN NULL;
    END IF;
    -- Rows in key order: two statements adding to the same facets never wait on each other crosswise.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO client_facet_counts AS c (kind, value, shard, clients)
        SELECT kind, value, counter_shard(), sum(delta)
        FROM ({_FACETS_OF.format(sign=1, table="added_clients")}) d
        GROUP BY kind, value ORDER BY kind, value
        ON CONFLICT (kind, value, shard) DO UPDATE SET clients = c.clients + excluded.clients;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO client_facet_counts AS c (kind, value, shard, clients)
        SELECT kind, value, counter_shard(), sum(delta)
        FROM ({_FACETS_OF.format(sign=-1, table="removed_clients")}) d
        GROUP BY kind, value ORDER BY kind, value
        ON CONFLICT (kind, value, shard) DO UPDATE SET clients = c.clients + excluded.clients;
    ELSE
        INSERT INTO client_facet_counts AS c (kind, value, shard, clients)
        SELECT kind, value, counter_shard(), sum(delta)
        FROM (
            {_FACETS_OF.format(sign=1, table="changed_clients")}
            UNION ALL
            {_FACETS_OF.format(sign=-1, table="unchanged_clients")}
        ) d
        GROUP BY kind, value HAVING sum(delta) <> 0 ORDER BY kind, value
        ON CONFLICT (kind, value, shard) DO UPDATE SET clients = c.clients + excluded.clients;
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER clients_faceted_on_truncate AFTER TRUNCATE ON clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_client_facets()",
    "CREATE TRIGGER clients_faceted_on_insert AFTER INSERT ON clients"
    " REFERENCING NEW TABLE AS added_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_client_facets()",
    # Every UPDATE: a trigger with transition tables cannot name columns (UPDATE OF tag, ...).
    # Rows whose tag and operator code stayed cancel out in the grouped sum.
    "CREATE TRIGGER clients_faceted_on_update AFTER UPDATE ON clients"
    " REFERENCING OLD TABLE AS unchanged_clients NEW TABLE AS changed_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_client_facets()",
    "CREATE TRIGGER clients_faceted_on_delete AFTER DELETE ON clients"
    " REFERENCING OLD TABLE AS removed_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_client_facets()",
)

_BACKFILL = f"""
INSERT INTO client_facet_counts (kind, value, shard, clients)
SELECT kind, value, 0, sum(delta) FROM ({_FACETS_OF.format(sign=1, table="clients")}) d GROUP BY kind, value
"""  # noqa: S608  (built from this module's constants only)

_EMPTY = sa.text("'{}'")


def _filter_columns() -> list[sa.Column[list[str]]]:
    return [
        sa.Column("filter_operator_codes", sa.ARRAY(sa.String(length=3)), server_default=_EMPTY, nullable=False),
        sa.Column("filter_tags", sa.ARRAY(sa.String(length=100)), server_default=_EMPTY, nullable=False),
    ]


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        *_filter_columns(),
        *_stamps(),
        sa.CheckConstraint("char_length(btrim(name)) >= 1", name=op.f("ck_audiences_name_not_blank")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("name", name=op.f("uq_audiences_name")),
    )
    op.create_table(
        "operator_code_names",
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(r"code ~ '^[0-9]{3}$'", name=op.f("ck_operator_code_names_code_format")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_operator_code_names")),
    )
    op.create_table(
        "client_facet_counts",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("clients", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", "shard", name=op.f("pk_client_facet_counts")),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("audience_id", sa.BigInteger(), nullable=True),
        *_filter_columns(),
        sa.Column("send_window_start", sa.Time(), nullable=True),
        sa.Column("send_window_end", sa.Time(), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("rrule", sa.String(length=1000), nullable=False),
        sa.Column("starts", sa.DateTime(timezone=False), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("paused_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("considered_until", DateTimeUTC(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 1600", name=op.f("ck_schedules_text_length")),
        sa.CheckConstraint("duration_s > 0", name=op.f("ck_schedules_duration_positive")),
        sa.CheckConstraint(
            "audience_id IS NULL OR (filter_operator_codes = '{}' AND filter_tags = '{}')",
            name=op.f("ck_schedules_audience_or_filter"),
        ),
        sa.CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)"
            " AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name=op.f("ck_schedules_send_window_complete"),
        ),
        sa.ForeignKeyConstraint(
            ["audience_id"], ["audiences.id"], name=op.f("fk_schedules_audience_id_audiences"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_audience_id"), "schedules", ["audience_id"], unique=False)

    op.add_column("mailings", sa.Column("audience_id", sa.BigInteger(), nullable=True))
    op.add_column("mailings", sa.Column("schedule_id", sa.BigInteger(), nullable=True))
    op.add_column("mailings", sa.Column("occurrence_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_mailings_audience_id_audiences"), "mailings", "audiences", ["audience_id"], ["id"], ondelete="SET NULL"
    )
    op.create_foreign_key(
        op.f("fk_mailings_schedule_id_schedules"), "mailings", "schedules", ["schedule_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(op.f("ix_mailings_audience_id"), "mailings", ["audience_id"], unique=False)
    op.create_unique_constraint("uq_mailings_schedule_occurrence", "mailings", ["schedule_id", "occurrence_at"])
    op.create_check_constraint(
        op.f("ck_mailings_audience_or_filter"),
        "mailings",
        "audience_id IS NULL OR (filter_operator_codes = '{}' AND filter_tags = '{}')",
    )

    op.execute(_FACETS_FUNCTION)
    # Writers wait from here to the commit: nothing changes between the count and the triggers.
    op.execute("LOCK TABLE clients IN SHARE ROW EXCLUSIVE MODE")
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(_BACKFILL)


def downgrade() -> None:
    for trigger in (
        "clients_faceted_on_delete",
        "clients_faceted_on_update",
        "clients_faceted_on_insert",
        "clients_faceted_on_truncate",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON clients")
    op.execute("DROP FUNCTION IF EXISTS count_client_facets()")
    op.drop_constraint(op.f("ck_mailings_audience_or_filter"), "mailings", type_="check")
    op.drop_constraint("uq_mailings_schedule_occurrence", "mailings", type_="unique")
    op.drop_index(op.f("ix_mailings_audience_id"), table_name="mailings")
    op.drop_constraint(op.f("fk_mailings_schedule_id_schedules"), "mailings", type_="foreignkey")
    op.drop_constraint(op.f("fk_mailings_audience_id_audiences"), "mailings", type_="foreignkey")
    op.drop_column("mailings", "occurrence_at")
    op.drop_column("mailings", "schedule_id")
    op.drop_column("mailings", "audience_id")
    op.drop_index(op.f("ix_schedules_audience_id"), table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("client_facet_counts")
    op.drop_table("operator_code_names")
    op.drop_table("audiences")
