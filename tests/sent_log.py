"""Every time a message is recorded ``sent``, written down by a trigger the test installs in its own database.

The ``messages`` row shows only the last write; this log shows each one, so "recorded sent at most once" is
something a test can count rather than infer from a primary key.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_INSTALL = (
    "CREATE TABLE test_sent_log (message_id bigint NOT NULL, sent_at timestamptz)",
    """
    CREATE FUNCTION test_log_sent() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO test_sent_log VALUES (NEW.id, NEW.sent_at);
        RETURN NEW;
    END $$
    """,
    # A write that moves a message to sent, or writes sent again with another time; not the unrelated
    # updates of a sent row (its client deleted, say).
    """
    CREATE TRIGGER test_log_sent AFTER UPDATE ON messages FOR EACH ROW
    WHEN (NEW.status = 'sent' AND (OLD.status <> 'sent' OR NEW.sent_at IS DISTINCT FROM OLD.sent_at))
    EXECUTE FUNCTION test_log_sent()
    """,
)


async def record_sends(db: AsyncSession) -> None:
    for statement in _INSTALL:
        await db.execute(text(statement))
    await db.commit()


async def sends_recorded(db: AsyncSession) -> Counter[int]:
    """How many times each message was recorded sent since ``record_sends``."""
    rows = await db.execute(text("SELECT message_id FROM test_sent_log"))
    counts = Counter(int(row[0]) for row in rows)
    await db.rollback()
    return counts
