"""Retention: the messages of mailings that ended more than ``NOTIFICATION_MESSAGE_RETENTION_DAYS``
ago are deleted, a bounded batch per transaction, while their counters stay as they were.

A mailing is first marked (``messages_purged_at``): from then on the counting trigger leaves its
deletions out, verification and rebuilding skip it, and it can no longer be planned again. Only
mailings with nothing pending are marked, so the counts they keep are final.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg import AsyncConnection

PURGE_BATCH_SIZE = 10_000
"""Messages deleted per transaction: row locks and WAL of one batch stay small."""

_MARK_ENDED = """
UPDATE mailings g SET messages_purged_at = now()
WHERE g.end_at < now() - make_interval(days => %(days)s) AND g.messages_purged_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.status = 'pending')
"""

_PURGING = """
SELECT g.id FROM mailings g
WHERE g.messages_purged_at IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.mailing_id = g.id)
ORDER BY g.id
"""

# In id order, as every writer of messages locks them; a row some other transaction holds waits
# for the next batch.
_PURGE_BATCH = """
WITH doomed AS (
    SELECT id FROM messages
    WHERE mailing_id = %(mailing_id)s AND id > %(after)s
    ORDER BY id LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM messages m USING doomed WHERE m.id = doomed.id RETURNING m.id
)
SELECT count(*) AS deleted, max(id) AS last_id FROM gone
"""


@dataclass(slots=True)
class PurgeReport:
    mailings_marked: int = 0
    messages_deleted: int = 0
    finished: bool = True


async def purge_expired_messages(
    conn: AsyncConnection, retention_days: int, budget_s: float = 30.0, batch_size: int = PURGE_BATCH_SIZE
) -> PurgeReport:
    """Deletes what retention allows, one batch per transaction, until done or ``budget_s`` is spent
    (the rest waits for the next run)."""
    report = PurgeReport()
    deadline = time.monotonic() + budget_s
    async with conn.transaction():
        report.mailings_marked = (await conn.execute(_MARK_ENDED, {"days": retention_days})).rowcount
    mailing_ids = [row[0] for row in await (await conn.execute(_PURGING)).fetchall()]
    for mailing_id in mailing_ids:
        after = 0
        while True:
            if time.monotonic() > deadline:
                report.finished = False
                return report
            async with conn.transaction():
                params = {"mailing_id": mailing_id, "after": after, "batch": batch_size}
                row = await (await conn.execute(_PURGE_BATCH, params)).fetchone()
            deleted, last_id = (row[0], row[1]) if row else (0, None)
            report.messages_deleted += deleted
            if deleted < batch_size or last_id is None:
                break
            after = last_id
    return report
