"""Reading what the fake provider saw, from its ``/_fake/`` record over HTTP, so that the same helpers serve a
fake running in the test process or in a process of its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import httpx
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.dev.fake_provider import Arrival, RunningFakeProvider


def _root(fake: RunningFakeProvider | str) -> str:
    return fake.url if isinstance(fake, RunningFakeProvider) else fake.rstrip("/")


async def arrivals(fake: RunningFakeProvider | str, message_ids: Iterable[int]) -> dict[int, list[Arrival]]:
    """Every send request the fake received for each of ``message_ids``, in arrival order; an id it never
    received maps to an empty list."""
    ids = sorted(set(message_ids))
    async with httpx.AsyncClient() as http:
        # The whole record, filtered here: a mailing's ids may not fit in a URL.
        response = await http.get(f"{_root(fake)}/_fake/arrivals", timeout=30)
    assert response.status_code == 200, response.text
    by_id: dict[int, list[Arrival]] = {message_id: [] for message_id in ids}
    for arrival in msgspec.json.decode(response.content, type=list[Arrival]):
        if arrival.msg_id in by_id:
            by_id[arrival.msg_id].append(arrival)
    return by_id


def accepted_counts(by_id: dict[int, list[Arrival]]) -> dict[int, int]:
    """How many times the fake accepted each message (answered it with the success body)."""
    counts: dict[int, int] = defaultdict(int)
    for message_id, requests in by_id.items():
        counts[message_id] = sum(1 for request in requests if request.accepted)
    return dict(counts)


async def message_ids_of(db: AsyncSession, mailing_id: int, status: str | None = None) -> set[int]:
    """The ids of a mailing's messages (of one status when given), read straight from the table."""
    query = "SELECT id FROM messages WHERE mailing_id = :m AND (CAST(:s AS text) IS NULL OR status = :s)"
    rows = await db.execute(text(query), {"m": mailing_id, "s": status})
    ids = {int(row[0]) for row in rows}
    await db.rollback()
    return ids
