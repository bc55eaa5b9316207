"""Messages per provider: a mailing's statistics and the dashboard read them from counters.

``message_provider_counts`` keeps, per mailing, provider of the last attempt and status, how many
messages there are, kept by statement-level triggers exactly as the counters of revision 0010 are
(the same shards, the same rules for a mailing's own deletion and for retention): a message counts
once it has a provider, under the provider of its last attempt, and moves between rows in the
transaction that changes its status or provider. Reading a mailing's split reads a few rows, never
its messages.

Existing messages are counted once, under a lock that keeps writers out until the commit.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_COUNTED = "provider IS NOT NULL"

_UPSERT = """
    ON CONFLICT (mailing_id, provider, status, shard) DO UPDATE
    SET messages = p.messages + excluded.messages;
"""

_INSERT_FUNCTION = f"""
CREATE FUNCTION count_inserted_message_providers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_provider_counts AS p (mailing_id, provider, status, shard, messages)
    SELECT mailing_id, provider, status, counter_shard(), count(*)
    FROM inserted_messages
    WHERE {_COUNTED}
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# Each row counts out as it was and in as it is; groups whose change sums to nothing (an attempt
# that changed neither status nor provider) write nothing.
_UPDATE_FUNCTION = f"""
CREATE FUNCTION count_updated_message_providers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_provider_counts AS p (mailing_id, provider, status, shard, messages)
    SELECT d.mailing_id, d.provider, d.status, counter_shard(), sum(d.messages)
    FROM (
        SELECT mailing_id, provider, status, 1 AS messages FROM updated_messages WHERE {_COUNTED}
        UNION ALL
        SELECT mailing_id, provider, status, -1 FROM replaced_messages WHERE {_COUNTED}
    ) d
    GROUP BY d.mailing_id, d.provider, d.status
    HAVING sum(d.messages) <> 0
    ORDER BY 1, 2, 3
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# As for the counters: a mailing's own deletion takes its rows with it (the cascade), and
# retention's deletions leave a purged mailing's rows as they were.
_DELETE_FUNCTION = f"""
CREATE FUNCTION count_deleted_message_providers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_provider_counts AS p (mailing_id, provider, status, shard, messages)
    SELECT d.mailing_id, d.provider, d.status, counter_shard(), -d.messages
    FROM (
        SELECT mailing_id, provider, status, count(*) AS messages
        FROM deleted_messages WHERE {_COUNTED}
        GROUP BY 1, 2, 3
    ) d
    JOIN mailings g ON g.id = d.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2, 3
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

_TRUNCATE_FUNCTION = """
CREATE FUNCTION count_truncated_message_providers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_provider_counts p USING mailings g
    WHERE g.id = p.mailing_id AND g.messages_purged_at IS NULL;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER message_providers_counted_on_insert AFTER INSERT ON messages"
    " REFERENCING NEW TABLE AS inserted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_message_providers()",
    "CREATE TRIGGER message_providers_counted_on_update AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_updated_message_providers()",
    "CREATE TRIGGER message_providers_counted_on_delete AFTER DELETE ON messages"
    " REFERENCING OLD TABLE AS deleted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_message_providers()",
    "CREATE TRIGGER message_providers_counted_on_truncate AFTER TRUNCATE ON messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_message_providers()",
)

_BACKFILL = f"""
INSERT INTO message_provider_counts (mailing_id, provider, status, shard, messages)
SELECT mailing_id, provider, status, 0, count(*)
FROM messages WHERE {_COUNTED}
GROUP BY 1, 2, 3
"""  # noqa: S608  (built from this module's constants only)


def upgrade() -> None:
    op.create_table(
        "message_provider_counts",
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_message_provider_counts_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", "provider", "status", "shard", name=op.f("pk_message_provider_counts")),
    )
    for function in (_INSERT_FUNCTION, _UPDATE_FUNCTION, _DELETE_FUNCTION, _TRUNCATE_FUNCTION):
        op.execute(function)
    # Writers wait from here to the commit: nothing changes between the count and the triggers.
    op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(_BACKFILL)


def downgrade() -> None:
    for trigger in (
        "message_providers_counted_on_truncate",
        "message_providers_counted_on_delete",
        "message_providers_counted_on_update",
        "message_providers_counted_on_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON messages")
    for function in (
        "count_truncated_message_providers()",
        "count_deleted_message_providers()",
        "count_updated_message_providers()",
        "count_inserted_message_providers()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("message_provider_counts")
