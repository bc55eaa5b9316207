"""Errors per minute: the dashboard's "errors of the last hour" read from a rollup, not from messages.

The dashboard counted the unsent messages whose last provider error was of each kind among those due
in the last hour, from ``messages``: 2-3 s at 10 million messages. ``message_errors_per_minute``
keeps that count per mailing, minute of ``due_at`` and error kind, kept by statement-level triggers
exactly as the counters of revision 0010 are (the same shards, the same rules for a mailing's own
deletion and for retention), so a message whose error changes, which is sent or which is due again
later moves from one row to another in the transaction that changes it.

Existing messages are counted once, under a lock that keeps writers out until the commit.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# A message counts while it is unsent and has an error: these are the rows of one transition table
# that do.
_COUNTED = "status <> 'sent' AND error_kind IS NOT NULL"

_UPSERT = """
    ON CONFLICT (mailing_id, minute, error_kind, shard) DO UPDATE
    SET messages = e.messages + excluded.messages;
"""

_INSERT_FUNCTION = f"""
CREATE FUNCTION count_inserted_message_errors() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_errors_per_minute AS e (mailing_id, minute, error_kind, shard, messages)
    SELECT mailing_id, date_trunc('minute', due_at, 'UTC'), error_kind, counter_shard(), count(*)
    FROM inserted_messages
    WHERE {_COUNTED}
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    {_UPSERT}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# Each row counts out as it was and in as it is; groups whose change sums to nothing write nothing.
_UPDATE_FUNCTION = f"""
CREATE FUNCTION count_updated_message_errors() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_errors_per_minute AS e (mailing_id, minute, error_kind, shard, messages)
    SELECT d.mailing_id, d.minute, d.error_kind, counter_shard(), sum(d.messages)
    FROM (
        SELECT mailing_id, date_trunc('minute', due_at, 'UTC') AS minute, error_kind, 1 AS messages
        FROM updated_messages WHERE {_COUNTED}
        UNION ALL
        SELECT mailing_id, date_trunc('minute', due_at, 'UTC'), error_kind, -1
        FROM replaced_messages WHERE {_COUNTED}
    ) d
    GROUP BY d.mailing_id, d.minute, d.error_kind
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
CREATE FUNCTION count_deleted_message_errors() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_errors_per_minute AS e (mailing_id, minute, error_kind, shard, messages)
    SELECT d.mailing_id, d.minute, d.error_kind, counter_shard(), -d.messages
    FROM (
        SELECT mailing_id, date_trunc('minute', due_at, 'UTC') AS minute, error_kind, count(*) AS messages
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
CREATE FUNCTION count_truncated_message_errors() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_errors_per_minute e USING mailings g
    WHERE g.id = e.mailing_id AND g.messages_purged_at IS NULL;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER message_errors_counted_on_insert AFTER INSERT ON messages"
    " REFERENCING NEW TABLE AS inserted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_message_errors()",
    "CREATE TRIGGER message_errors_counted_on_update AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_updated_message_errors()",
    "CREATE TRIGGER message_errors_counted_on_delete AFTER DELETE ON messages"
    " REFERENCING OLD TABLE AS deleted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_message_errors()",
    "CREATE TRIGGER message_errors_counted_on_truncate AFTER TRUNCATE ON messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_message_errors()",
)

_BACKFILL = f"""
INSERT INTO message_errors_per_minute (mailing_id, minute, error_kind, shard, messages)
SELECT mailing_id, date_trunc('minute', due_at, 'UTC'), error_kind, 0, count(*)
FROM messages WHERE {_COUNTED}
GROUP BY 1, 2, 3
"""  # noqa: S608  (built from this module's constants only)


def upgrade() -> None:
    op.create_table(
        "message_errors_per_minute",
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("minute", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("error_kind", sa.String(length=24), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_message_errors_per_minute_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "mailing_id", "minute", "error_kind", "shard", name=op.f("pk_message_errors_per_minute")
        ),
    )
    op.create_index("ix_message_errors_per_minute_minute", "message_errors_per_minute", ["minute"], unique=False)
    for function in (_INSERT_FUNCTION, _UPDATE_FUNCTION, _DELETE_FUNCTION, _TRUNCATE_FUNCTION):
        op.execute(function)
    # Writers wait from here to the commit: nothing changes between the count and the triggers.
    op.execute("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(_BACKFILL)


def downgrade() -> None:
    for trigger in (
        "message_errors_counted_on_truncate",
        "message_errors_counted_on_delete",
        "message_errors_counted_on_update",
        "message_errors_counted_on_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON messages")
    for function in (
        "count_truncated_message_errors()",
        "count_deleted_message_errors()",
        "count_updated_message_errors()",
        "count_inserted_message_errors()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_index("ix_message_errors_per_minute_minute", table_name="message_errors_per_minute")
    op.drop_table("message_errors_per_minute")
