"""Counters of messages kept by statement-level triggers; the reporting views read them.

Statistics and metrics grouped ``messages`` at every request: about 0.3-0.6 s at 10 million rows,
growing with the table. Three AFTER ... FOR EACH STATEMENT triggers read the statement's
transition tables and add, in one grouped upsert each, the change it made to
``message_counts`` (messages and attempts per mailing, status and kind of last error) and to
``message_sends_per_minute`` (messages sent per mailing and minute, with the first and last send
time of the minute), in the same transaction as the change itself; ``client_counts`` keeps the size
of the directory the same way.

Concurrent batches of one mailing would queue on its few counter rows until each commits: a
writing transaction therefore takes the lowest of 64 shards no other transaction holds (a
transaction-level advisory lock, remembered in ``notification.counter_shard``) and writes only
that shard's rows. A deletion leaves the counters alone when the mailing is gone (the cascade of
its own deletion takes its counters too) or when retention has started purging its messages
(their counts are kept on purpose). The three views keep their names and columns.

Existing messages are counted once, under a lock that keeps writers out until the commit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Two-key advisory locks (key, shard); the first key is ours alone: 'nCnt' in ASCII.
_SHARD_FUNCTION = """
CREATE FUNCTION counter_shard() RETURNS smallint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held text := current_setting('notification.counter_shard', true);
BEGIN
    IF held <> '' THEN
        RETURN held::smallint;
    END IF;
    FOR candidate IN 0..63 LOOP
        IF pg_try_advisory_xact_lock(1849975412, candidate) THEN
            PERFORM set_config('notification.counter_shard', candidate::text, true);
            RETURN candidate;
        END IF;
    END LOOP;
    -- Every shard taken: share one, waiting on its rows at worst.
    RETURN (pg_backend_pid() % 64)::smallint;
END
$$
"""

_UPSERT_COUNTS = """
    ON CONFLICT (mailing_id, status, error_kind, shard) DO UPDATE
    SET messages = c.messages + excluded.messages, attempts = c.attempts + excluded.attempts;
"""

_UPSERT_SENDS = """
    ON CONFLICT (mailing_id, minute, shard) DO UPDATE
    SET sent = s.sent + excluded.sent,
        first_sent_at = least(s.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(s.last_sent_at, excluded.last_sent_at);
"""

# The shard function sits in the select list: a statement that changes no counter takes no shard.
_INSERT_FUNCTION = f"""
CREATE FUNCTION count_inserted_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT n.mailing_id, n.status, coalesce(n.error_kind, ''), counter_shard(), count(*), sum(n.attempts)
    FROM inserted_messages n
    GROUP BY n.mailing_id, n.status, coalesce(n.error_kind, '')
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT n.mailing_id, date_trunc('minute', n.sent_at, 'UTC'), counter_shard(),
           count(*), min(n.sent_at), max(n.sent_at)
    FROM inserted_messages n
    WHERE n.status = 'sent' AND n.sent_at IS NOT NULL
    GROUP BY n.mailing_id, date_trunc('minute', n.sent_at, 'UTC')
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# Each row counts out as it was and in as it is; groups whose change sums to nothing write nothing
# (a claim changes attempts only, a reschedule nothing counted at all).
_UPDATE_FUNCTION = f"""
CREATE FUNCTION count_updated_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT d.mailing_id, d.status, d.error_kind, counter_shard(), sum(d.messages), sum(d.attempts)
    FROM (
        SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, 1 AS messages, attempts
        FROM updated_messages
        UNION ALL
        SELECT mailing_id, status, coalesce(error_kind, ''), -1, -attempts
        FROM replaced_messages
    ) d
    GROUP BY d.mailing_id, d.status, d.error_kind
    HAVING sum(d.messages) <> 0 OR sum(d.attempts) <> 0
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT d.mailing_id, date_trunc('minute', d.sent_at, 'UTC'), counter_shard(), sum(d.sent),
           min(d.sent_at) FILTER (WHERE d.sent > 0), max(d.sent_at) FILTER (WHERE d.sent > 0)
    FROM (
        SELECT mailing_id, sent_at, 1 AS sent FROM updated_messages WHERE status = 'sent' AND sent_at IS NOT NULL
        UNION ALL
        SELECT mailing_id, sent_at, -1 FROM replaced_messages WHERE status = 'sent' AND sent_at IS NOT NULL
    ) d
    GROUP BY d.mailing_id, date_trunc('minute', d.sent_at, 'UTC')
    HAVING sum(d.sent) <> 0
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# Messages deleted by their mailing's own deletion (its cascade) or by retention leave the
# counters as they are: the first take their counters with them, the second keep them on purpose.
# The cascade's rows arrive in the same transition table as any other deletion of the same query
# (one table for all the mailings a statement deletes), so the mailing is checked per group: about
# 0.25 s of grouping for a million messages, on a deletion that takes 0.7 s without it.
_DELETE_FUNCTION = f"""
CREATE FUNCTION count_deleted_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT d.mailing_id, d.status, d.error_kind, counter_shard(), -d.messages, -d.attempts
    FROM (
        SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, count(*) AS messages,
               sum(attempts) AS attempts
        FROM deleted_messages
        GROUP BY mailing_id, status, coalesce(error_kind, '')
    ) d
    JOIN mailings g ON g.id = d.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2, 3
    {_UPSERT_COUNTS}
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT d.mailing_id, d.minute, counter_shard(), -d.sent, NULL, NULL
    FROM (
        SELECT mailing_id, date_trunc('minute', sent_at, 'UTC') AS minute, count(*) AS sent
        FROM deleted_messages
        WHERE status = 'sent' AND sent_at IS NOT NULL
        GROUP BY 1, 2
    ) d
    JOIN mailings g ON g.id = d.mailing_id AND g.messages_purged_at IS NULL
    ORDER BY 1, 2
    {_UPSERT_SENDS}
    RETURN NULL;
END
$$
"""  # noqa: S608  (built from this module's constants only)

# TRUNCATE has no transition table: every count goes but those retention keeps.
_TRUNCATE_FUNCTION = """
CREATE FUNCTION count_truncated_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_counts c USING mailings g WHERE g.id = c.mailing_id AND g.messages_purged_at IS NULL;
    DELETE FROM message_sends_per_minute s USING mailings g
    WHERE g.id = s.mailing_id AND g.messages_purged_at IS NULL;
    RETURN NULL;
END
$$
"""

# The directory's size for the metrics, kept the same way (counting a million clients took 0.1-0.25 s).
_CLIENTS_FUNCTION = """
CREATE FUNCTION count_clients() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM client_counts;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO client_counts AS c (shard, clients)
        SELECT counter_shard(), count(*) FROM added_clients HAVING count(*) > 0
        ON CONFLICT (shard) DO UPDATE SET clients = c.clients + excluded.clients;
    ELSE
        INSERT INTO client_counts AS c (shard, clients)
        SELECT counter_shard(), -count(*) FROM removed_clients HAVING count(*) > 0
        ON CONFLICT (shard) DO UPDATE SET clients = c.clients + excluded.clients;
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER messages_counted_on_insert AFTER INSERT ON messages"
    " REFERENCING NEW TABLE AS inserted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_messages()",
    "CREATE TRIGGER messages_counted_on_update AFTER UPDATE ON messages"
    " REFERENCING OLD TABLE AS replaced_messages NEW TABLE AS updated_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_updated_messages()",
    "CREATE TRIGGER messages_counted_on_delete AFTER DELETE ON messages"
    " REFERENCING OLD TABLE AS deleted_messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_messages()",
    "CREATE TRIGGER messages_counted_on_truncate AFTER TRUNCATE ON messages"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_messages()",
    "CREATE TRIGGER clients_counted_on_truncate AFTER TRUNCATE ON clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_clients()",
    "CREATE TRIGGER clients_counted_on_insert AFTER INSERT ON clients"
    " REFERENCING NEW TABLE AS added_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_clients()",
    "CREATE TRIGGER clients_counted_on_delete AFTER DELETE ON clients"
    " REFERENCING OLD TABLE AS removed_clients"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_clients()",
)

_BACKFILL = (
    """
    INSERT INTO message_counts (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT mailing_id, status, coalesce(error_kind, ''), 0, count(*), sum(attempts)
    FROM messages GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO message_sends_per_minute (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT mailing_id, date_trunc('minute', sent_at, 'UTC'), 0, count(*), min(sent_at), max(sent_at)
    FROM messages WHERE status = 'sent' AND sent_at IS NOT NULL GROUP BY 1, 2
    """,
    "INSERT INTO client_counts (shard, clients) SELECT 0, count(*) FROM clients",
)

_VIEWS = (
    """
    CREATE VIEW mailing_status_counts AS
    SELECT mailing_id, status, sum(messages)::bigint AS messages
    FROM message_counts
    GROUP BY mailing_id, status
    HAVING sum(messages) <> 0
    """,
    "COMMENT ON VIEW mailing_status_counts IS 'Messages of each mailing by status (one row per pair present)'",
    """
    CREATE VIEW mailing_stats AS
    SELECT g.id AS mailing_id,
           g.start_at,
           g.end_at,
           coalesce(c.total, 0)::bigint AS total,
           coalesce(c.pending, 0)::bigint AS pending,
           coalesce(c.sent, 0)::bigint AS sent,
           coalesce(c.failed, 0)::bigint AS failed,
           coalesce(c.expired, 0)::bigint AS expired,
           coalesce(c.cancelled, 0)::bigint AS cancelled,
           t.first_sent_at,
           t.last_sent_at
    FROM mailings g
    LEFT JOIN (
        SELECT mailing_id,
               sum(messages) AS total,
               sum(messages) FILTER (WHERE status = 'pending') AS pending,
               sum(messages) FILTER (WHERE status = 'sent') AS sent,
               sum(messages) FILTER (WHERE status = 'failed') AS failed,
               sum(messages) FILTER (WHERE status = 'expired') AS expired,
               sum(messages) FILTER (WHERE status = 'cancelled') AS cancelled
        FROM message_counts
        GROUP BY mailing_id
    ) c ON c.mailing_id = g.id
    LEFT JOIN (
        SELECT mailing_id, min(first_sent_at) AS first_sent_at, max(last_sent_at) AS last_sent_at
        FROM (
            SELECT mailing_id, minute, min(first_sent_at) AS first_sent_at, max(last_sent_at) AS last_sent_at
            FROM message_sends_per_minute
            GROUP BY mailing_id, minute
            HAVING sum(sent) > 0
        ) minutes
        GROUP BY mailing_id
    ) t ON t.mailing_id = g.id
    """,
    "COMMENT ON VIEW mailing_stats IS 'One row per mailing: message counts by status and send times'",
    """
    CREATE VIEW message_status_totals AS
    SELECT status, sum(messages)::bigint AS messages
    FROM message_counts
    GROUP BY status
    HAVING sum(messages) <> 0
    """,
    "COMMENT ON VIEW message_status_totals IS 'All messages by status'",
)

# The definitions of revision 0003, for the way back.
_SCANNING_VIEWS = (
    """
    CREATE VIEW mailing_status_counts AS
    SELECT mailing_id, status, count(*) AS messages
    FROM messages
    GROUP BY mailing_id, status
    """,
    "COMMENT ON VIEW mailing_status_counts IS 'Messages of each mailing by status (one row per pair present)'",
    """
    CREATE VIEW mailing_stats AS
    SELECT g.id AS mailing_id,
           g.start_at,
           g.end_at,
           count(m.id) AS total,
           count(*) FILTER (WHERE m.status = 'pending') AS pending,
           count(*) FILTER (WHERE m.status = 'sent') AS sent,
           count(*) FILTER (WHERE m.status = 'failed') AS failed,
           count(*) FILTER (WHERE m.status = 'expired') AS expired,
           count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
           min(m.sent_at) AS first_sent_at,
           max(m.sent_at) AS last_sent_at
    FROM mailings g
    LEFT JOIN messages m ON m.mailing_id = g.id
    GROUP BY g.id
    """,
    "COMMENT ON VIEW mailing_stats IS 'One row per mailing: message counts by status and send times'",
    "CREATE VIEW message_status_totals AS SELECT status, count(*) AS messages FROM messages GROUP BY status",
    "COMMENT ON VIEW message_status_totals IS 'All messages by status'",
)

_DROP_VIEWS = (
    "DROP VIEW IF EXISTS message_status_totals",
    "DROP VIEW IF EXISTS mailing_stats",
    "DROP VIEW IF EXISTS mailing_status_counts",
)


def upgrade() -> None:
    op.add_column("mailings", sa.Column("messages_purged_at", DateTimeUTC(timezone=True), nullable=True))
    op.create_table(
        "message_counts",
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_kind", sa.String(length=24), server_default="", nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("messages", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"], ["mailings.id"], name=op.f("fk_message_counts_mailing_id_mailings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mailing_id", "status", "error_kind", "shard", name=op.f("pk_message_counts")),
    )
    op.create_table(
        "message_sends_per_minute",
        sa.Column("mailing_id", sa.BigInteger(), nullable=False),
        sa.Column("minute", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("shard", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("sent", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_sent_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_sent_at", DateTimeUTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_message_sends_per_minute_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", "minute", "shard", name=op.f("pk_message_sends_per_minute")),
    )
    op.create_index("ix_message_sends_per_minute_minute", "message_sends_per_minute", ["minute"], unique=False)
    op.create_table(
        "client_counts",
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("clients", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_client_counts")),
    )

    op.execute(_SHARD_FUNCTION)
    op.execute(_INSERT_FUNCTION)
    op.execute(_UPDATE_FUNCTION)
    op.execute(_DELETE_FUNCTION)
    op.execute(_TRUNCATE_FUNCTION)
    op.execute(_CLIENTS_FUNCTION)
    # Writers wait from here to the commit: nothing changes between the count and the triggers.
    op.execute("LOCK TABLE messages, clients IN SHARE ROW EXCLUSIVE MODE")
    for trigger in _TRIGGERS:
        op.execute(trigger)
    for statement in _BACKFILL:
        op.execute(statement)

    for statement in (*_DROP_VIEWS, *_VIEWS):
        op.execute(statement)


def downgrade() -> None:
    for statement in (*_DROP_VIEWS, *_SCANNING_VIEWS):
        op.execute(statement)
    for trigger in (
        "messages_counted_on_truncate",
        "messages_counted_on_delete",
        "messages_counted_on_update",
        "messages_counted_on_insert",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON messages")
    for trigger in ("clients_counted_on_truncate", "clients_counted_on_delete", "clients_counted_on_insert"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON clients")
    for function in (
        "count_clients()",
        "count_truncated_messages()",
        "count_deleted_messages()",
        "count_updated_messages()",
        "count_inserted_messages()",
        "counter_shard()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("client_counts")
    op.drop_index("ix_message_sends_per_minute_minute", table_name="message_sends_per_minute")
    op.drop_table("message_sends_per_minute")
    op.drop_table("message_counts")
    op.drop_column("mailings", "messages_purged_at")
