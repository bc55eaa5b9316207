"""The counters' upkeep outside the triggers: checking them against a full count of ``messages``,
counting them again from scratch, and folding their shards back into one row per key.

Mailings whose messages retention has started deleting are left out of all three: their counters
are final and no longer match what is left of their messages, on purpose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notification.stats.models import SHARDS

COUNTER_LOCK_KEY = 1849975412
"""First key of the two-key advisory locks that reserve a counter shard (migration 0010)."""

_COUNTS_DIFFERENCES = """
WITH counted AS (
    SELECT mailing_id, status, error_kind, sum(messages) AS messages, sum(attempts) AS attempts
    FROM message_counts
    GROUP BY mailing_id, status, error_kind
), stored AS (
    SELECT mailing_id, status, coalesce(error_kind, '') AS error_kind, count(*) AS messages,
           sum(attempts) AS attempts
    FROM messages
    GROUP BY mailing_id, status, coalesce(error_kind, '')
)
SELECT mailing_id, status, error_kind,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages,
       coalesce(c.attempts, 0)::bigint AS counted_attempts, coalesce(s.attempts, 0)::bigint AS stored_attempts
FROM counted c FULL JOIN stored s USING (mailing_id, status, error_kind)
WHERE (coalesce(c.messages, 0), coalesce(c.attempts, 0)) <> (coalesce(s.messages, 0), coalesce(s.attempts, 0))
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, status, error_kind
"""

_SENDS_DIFFERENCES = """
WITH counted AS (
    SELECT mailing_id, minute, sum(sent) AS sent, min(first_sent_at) AS first_sent_at,
           max(last_sent_at) AS last_sent_at
    FROM message_sends_per_minute
    GROUP BY mailing_id, minute
    HAVING sum(sent) <> 0
), stored AS (
    SELECT mailing_id, date_trunc('minute', sent_at, 'UTC') AS minute, count(*) AS sent,
           min(sent_at) AS first_sent_at, max(sent_at) AS last_sent_at
    FROM messages
    WHERE status = 'sent' AND sent_at IS NOT NULL
    GROUP BY mailing_id, date_trunc('minute', sent_at, 'UTC')
)
SELECT mailing_id, minute,
       coalesce(c.sent, 0)::bigint AS counted_sent, coalesce(s.sent, 0)::bigint AS stored_sent,
       c.first_sent_at AS counted_first_sent_at, s.first_sent_at AS stored_first_sent_at,
       c.last_sent_at AS counted_last_sent_at, s.last_sent_at AS stored_last_sent_at
FROM counted c FULL JOIN stored s USING (mailing_id, minute)
WHERE (c.sent, c.first_sent_at, c.last_sent_at) IS DISTINCT FROM (s.sent, s.first_sent_at, s.last_sent_at)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, minute
"""

# Messages counted while unsent with an error, by the minute they are due in (migration 0015).
_ERRORS_DIFFERENCES = """
WITH counted AS (
    SELECT mailing_id, minute, error_kind, sum(messages) AS messages
    FROM message_errors_per_minute
    GROUP BY mailing_id, minute, error_kind
    HAVING sum(messages) <> 0
), stored AS (
    SELECT mailing_id, date_trunc('minute', due_at, 'UTC') AS minute, error_kind, count(*) AS messages
    FROM messages
    WHERE status <> 'sent' AND error_kind IS NOT NULL
    GROUP BY mailing_id, date_trunc('minute', due_at, 'UTC'), error_kind
)
SELECT mailing_id, minute, error_kind,
       coalesce(c.messages, 0)::bigint AS counted_messages, coalesce(s.messages, 0)::bigint AS stored_messages
FROM counted c FULL JOIN stored s USING (mailing_id, minute, error_kind)
WHERE coalesce(c.messages, 0) <> coalesce(s.messages, 0)
  AND NOT EXISTS (SELECT 1 FROM mailings g WHERE g.id = mailing_id AND g.messages_purged_at IS NOT NULL)
ORDER BY mailing_id, minute, error_kind
"""

_CLIENTS_DIFFERENCE = """
SELECT (SELECT coalesce(sum(clients), 0) FROM client_counts)::bigint AS counted,
       (SELECT count(*) FROM clients) AS stored
"""

# Writers of messages and clients wait while the counters are recounted; readers do not.
_LOCK_WRITERS_OUT = "LOCK TABLE messages, clients IN SHARE MODE"

_REBUILD = (
    """
    DELETE FROM message_counts c USING mailings g
    WHERE g.id = c.mailing_id AND g.messages_purged_at IS NULL
    """,
    """
    DELETE FROM message_sends_per_minute s USING mailings g
    WHERE g.id = s.mailing_id AND g.messages_purged_at IS NULL
    """,
    """
    INSERT INTO message_counts (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT m.mailing_id, m.status, coalesce(m.error_kind, ''), 0, count(*), sum(m.attempts)
    FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
    GROUP BY m.mailing_id, m.status, coalesce(m.error_kind, '')
    """,
    """
    INSERT INTO message_sends_per_minute (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT m.mailing_id, date_trunc('minute', m.sent_at, 'UTC'), 0, count(*), min(m.sent_at), max(m.sent_at)
    FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
    WHERE m.status = 'sent' AND m.sent_at IS NOT NULL
    GROUP BY m.mailing_id, date_trunc('minute', m.sent_at, 'UTC')
    """,
    "DELETE FROM client_counts",
    "INSERT INTO client_counts (shard, clients) SELECT 0, count(*) FROM clients",
    """
    DELETE FROM message_errors_per_minute e USING mailings g
    WHERE g.id = e.mailing_id AND g.messages_purged_at IS NULL
    """,
    """
    INSERT INTO message_errors_per_minute (mailing_id, minute, error_kind, shard, messages)
    SELECT m.mailing_id, date_trunc('minute', m.due_at, 'UTC'), m.error_kind, 0, count(*)
    FROM messages m JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
    WHERE m.status <> 'sent' AND m.error_kind IS NOT NULL
    GROUP BY m.mailing_id, date_trunc('minute', m.due_at, 'UTC'), m.error_kind
    """,
)

# Shards holding rows that no writer holds right now, reserved for this transaction.
_RESERVE_IDLE_SHARDS = """
SELECT coalesce(array_agg(shard ORDER BY shard), '{}') AS shards
FROM (
    SELECT shard FROM message_counts
    UNION
    SELECT shard FROM message_sends_per_minute
    UNION
    SELECT shard FROM client_counts
    UNION
    SELECT shard FROM message_errors_per_minute
    UNION
    SELECT 0
) used
WHERE shard < %(shards)s AND pg_try_advisory_xact_lock(%(key)s, shard)
"""

# Into the lowest reserved shard, added to what it holds; then the others are emptied, and keys
# whose sum came to nothing (a mailing with no pending message left) disappear.
_FOLD = (
    """
    INSERT INTO message_counts AS c (mailing_id, status, error_kind, shard, messages, attempts)
    SELECT mailing_id, status, error_kind, %(target)s, sum(messages), sum(attempts)
    FROM message_counts WHERE shard = ANY(%(others)s)
    GROUP BY mailing_id, status, error_kind
    ORDER BY mailing_id, status, error_kind
    ON CONFLICT (mailing_id, status, error_kind, shard) DO UPDATE
    SET messages = c.messages + excluded.messages, attempts = c.attempts + excluded.attempts
    """,
    "DELETE FROM message_counts WHERE shard = ANY(%(others)s)",
    "DELETE FROM message_counts WHERE shard = %(target)s AND messages = 0 AND attempts = 0",
    """
    INSERT INTO message_sends_per_minute AS s (mailing_id, minute, shard, sent, first_sent_at, last_sent_at)
    SELECT mailing_id, minute, %(target)s, sum(sent), min(first_sent_at), max(last_sent_at)
    FROM message_sends_per_minute WHERE shard = ANY(%(others)s)
    GROUP BY mailing_id, minute
    ORDER BY mailing_id, minute
    ON CONFLICT (mailing_id, minute, shard) DO UPDATE
    SET sent = s.sent + excluded.sent,
        first_sent_at = least(s.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(s.last_sent_at, excluded.last_sent_at)
    """,
    "DELETE FROM message_sends_per_minute WHERE shard = ANY(%(others)s)",
    "DELETE FROM message_sends_per_minute WHERE shard = %(target)s AND sent = 0",
    """
    INSERT INTO client_counts AS c (shard, clients)
    SELECT %(target)s, sum(clients) FROM client_counts WHERE shard = ANY(%(others)s) HAVING count(*) > 0
    ON CONFLICT (shard) DO UPDATE SET clients = c.clients + excluded.clients
    """,
    "DELETE FROM client_counts WHERE shard = ANY(%(others)s)",
    """
    INSERT INTO message_errors_per_minute AS e (mailing_id, minute, error_kind, shard, messages)
    SELECT mailing_id, minute, error_kind, %(target)s, sum(messages)
    FROM message_errors_per_minute WHERE shard = ANY(%(others)s)
    GROUP BY mailing_id, minute, error_kind
    ORDER BY mailing_id, minute, error_kind
    ON CONFLICT (mailing_id, minute, error_kind, shard) DO UPDATE SET messages = e.messages + excluded.messages
    """,
    "DELETE FROM message_errors_per_minute WHERE shard = ANY(%(others)s)",
    "DELETE FROM message_errors_per_minute WHERE shard = %(target)s AND messages = 0",
)


_COUNTER_ROWS = """
SELECT (SELECT count(*) FROM message_counts) + (SELECT count(*) FROM message_sends_per_minute)
       + (SELECT count(*) FROM client_counts) + (SELECT count(*) FROM message_errors_per_minute)
"""


@dataclass(frozen=True, slots=True)
class CountDifference:
    """A (mailing, status, error kind) whose counters disagree with its messages."""

    mailing_id: int
    status: str
    error_kind: str
    counted_messages: int
    stored_messages: int
    counted_attempts: int
    stored_attempts: int

    def __str__(self) -> str:
        kind = self.error_kind or "-"
        return (
            f"mailing {self.mailing_id} {self.status}/{kind}: counted {self.counted_messages} messages"
            f" ({self.counted_attempts} attempts), stored {self.stored_messages} ({self.stored_attempts} attempts)"
        )


@dataclass(frozen=True, slots=True)
class SendsDifference:
    """A (mailing, minute) whose sends rollup disagrees with its sent messages."""

    mailing_id: int
    minute: dt.datetime
    counted_sent: int
    stored_sent: int
    counted_first_sent_at: dt.datetime | None
    stored_first_sent_at: dt.datetime | None
    counted_last_sent_at: dt.datetime | None
    stored_last_sent_at: dt.datetime | None

    def __str__(self) -> str:
        return (
            f"mailing {self.mailing_id} sends in {self.minute}: counted {self.counted_sent}"
            f" ({self.counted_first_sent_at} .. {self.counted_last_sent_at}),"
            f" stored {self.stored_sent} ({self.stored_first_sent_at} .. {self.stored_last_sent_at})"
        )


@dataclass(frozen=True, slots=True)
class ErrorsDifference:
    """A (mailing, minute due, error kind) whose errors rollup disagrees with its unsent messages."""

    mailing_id: int
    minute: dt.datetime
    error_kind: str
    counted_messages: int
    stored_messages: int

    def __str__(self) -> str:
        return (
            f"mailing {self.mailing_id} {self.error_kind} errors due in {self.minute}:"
            f" counted {self.counted_messages}, stored {self.stored_messages}"
        )


@dataclass(frozen=True, slots=True)
class ClientsDifference:
    counted: int
    stored: int

    def __str__(self) -> str:
        return f"clients: counted {self.counted}, stored {self.stored}"


@dataclass(frozen=True, slots=True)
class Verification:
    counts: list[CountDifference]
    sends: list[SendsDifference]
    clients: ClientsDifference | None = None
    errors: list[ErrorsDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.counts and not self.sends and self.clients is None and not self.errors

    def differences(self) -> list[CountDifference | SendsDifference | ClientsDifference | ErrorsDifference]:
        return [*self.counts, *self.sends, *([self.clients] if self.clients else []), *self.errors]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    count_rows: int
    sends_rows: int


async def verify_counters(conn: AsyncConnection) -> Verification:
    """Counters against a full GROUP BY of ``messages`` (and a count of ``clients``), read in one snapshot."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur = conn.cursor(row_factory=dict_row)
        counts = [CountDifference(**row) for row in await (await cur.execute(_COUNTS_DIFFERENCES)).fetchall()]
        sends = [SendsDifference(**row) for row in await (await cur.execute(_SENDS_DIFFERENCES)).fetchall()]
        row = await (await cur.execute(_CLIENTS_DIFFERENCE)).fetchone()
        errors = [ErrorsDifference(**found) for found in await (await cur.execute(_ERRORS_DIFFERENCES)).fetchall()]
    clients = ClientsDifference(**row) if row is not None else None
    if clients is not None and clients.counted == clients.stored:
        clients = None
    return Verification(counts=counts, sends=sends, clients=clients, errors=errors)


async def rebuild_counters(conn: AsyncConnection) -> Rebuilt:
    """Counts every mailing's messages again (purged mailings keep theirs), writers kept out meanwhile."""
    async with conn.transaction():
        await conn.execute(_LOCK_WRITERS_OUT)
        rowcounts = [(await conn.execute(statement)).rowcount for statement in _REBUILD]
    return Rebuilt(count_rows=rowcounts[2], sends_rows=rowcounts[3])


async def fold_counters(conn: AsyncConnection) -> int:
    """Sums the shards no writer holds into the lowest of them; returns how many rows went away."""
    async with conn.transaction():
        before = await _counter_rows(conn)
        reserved = await (
            await conn.execute(_RESERVE_IDLE_SHARDS, {"shards": SHARDS, "key": COUNTER_LOCK_KEY})
        ).fetchone()
        shards: list[int] = reserved[0] if reserved else []
        if not shards:
            return 0
        for statement in _FOLD:
            await conn.execute(statement, {"target": shards[0], "others": shards[1:]})
        return before - await _counter_rows(conn)


async def _counter_rows(conn: AsyncConnection) -> int:
    row = await (await conn.execute(_COUNTER_ROWS)).fetchone()
    return int(row[0]) if row else 0
