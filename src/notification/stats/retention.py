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

from notification.lib.sql import load
from notification.messages.state import MESSAGE_ENUMS, state

PURGE_BATCH_SIZE = 10_000
"""Messages deleted per transaction: row locks and WAL of one batch stay small."""

statements = load(__package__, "retention.sql", enums=MESSAGE_ENUMS)


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
        report.mailings_marked = (await conn.execute(statements["mark_ended"], {"days": retention_days})).rowcount
    mailing_ids = [row[0] for row in await (await conn.execute(statements["purging"])).fetchall()]
    for mailing_id in mailing_ids:
        after = 0
        while True:
            if time.monotonic() > deadline:
                report.finished = False
                return report
            async with conn.transaction():
                params = {"mailing_id": mailing_id, "after": after, "batch": batch_size}
                row = await (await conn.execute(state["purge_batch"], params)).fetchone()
            deleted, last_id = (row[0], row[1]) if row else (0, None)
            report.messages_deleted += deleted
            if deleted < batch_size or last_id is None:
                break
            after = last_id
    return report
