"""Storing receipts, set-based: a batch of an SMSC's receipts (by SMSC id) or of an HTTP provider's
(by our message id) in one transaction of a few statements, whatever its size.

A receipt is a final state of one part (``delivered`` or ``undelivered`` with the SMSC's error
code); intermediate states (ENROUTE, ACCEPTD...) are acknowledged and not stored. How a message is
decided from its parts is the database's ``decide_delivery_states`` (migration 0023): any part
undelivered makes it undelivered (with that part's error); all of its parts delivered make it
delivered; until then it waits. A decided message never changes again; ``unknown`` (the timeout's
guess) gives way to a receipt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from notification.lib.sql import load
from notification.messages.models import DeliveryState, MessageStatus

statements = load(__package__, "queries.sql", enums={"status": MessageStatus, "delivery_state": DeliveryState})


@dataclass(frozen=True, slots=True)
class PartReceipt:
    """A final receipt of one part, named by the SMSC's id of it."""

    part_id: str
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MessageReceipt:
    """A final receipt of a whole message, named by our id (the msgId the provider got)."""

    message_id: int
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    message_id: int
    state: str
    seconds_after_sent: float | None


@dataclass(slots=True)
class Stored:
    """What a batch did: messages decided by it, parts kept waiting for their id, duplicates."""

    decided: list[Decided] = field(default_factory=list)
    unmatched: int = 0
    already_decided: int = 0
    unknown_ids: list[int] = field(default_factory=list)


async def store_part_receipts(conn: AsyncConnection, provider: str, receipts: Sequence[PartReceipt]) -> Stored:
    """An SMSC's receipts, in one transaction: on return they are committed."""
    stored = Stored()
    if not receipts:
        return stored
    # One receipt per part id: the first of the batch wins, as the first stored does.
    first: dict[str, PartReceipt] = {}
    for receipt in receipts:
        first.setdefault(receipt.part_id, receipt)
    async with conn.transaction():
        await conn.execute(statements["plan_for_lookups"])
        params = {"part_ids": list(first), "provider": provider}
        found = await (await conn.execute(statements["find_parts"], params)).fetchall()
        message_of: dict[str, int] = {row[0]: row[1] for row in found}
        locked = await (
            await conn.execute(statements["lock_messages"], {"ids": sorted(set(message_of.values()))})
        ).fetchall()
        by_message = {message_id: (parts, decided) for message_id, parts, decided in locked}
        matched = {p: (m, *by_message[m]) for p, m in message_of.items() if m in by_message}
        waiting = [r for r in first.values() if r.part_id not in matched]
        if waiting:
            await conn.execute(
                statements["store_unmatched"],
                {
                    "provider": provider,
                    "part_ids": [r.part_id for r in waiting],
                    "states": [r.state for r in waiting],
                    "errors": [r.error for r in waiting],
                },
            )
            stored.unmatched = len(waiting)
        undecided = [(r, matched[r.part_id]) for r in first.values() if r.part_id in matched]
        stored.already_decided = sum(1 for _, (_, _, decided) in undecided if decided)
        whole = [(r, m[0]) for r, m in undecided if not m[2] and m[1] <= 1]
        parts = [(r, m) for r, m in undecided if not m[2] and m[1] > 1]
        if whole:
            stored.decided += await _set(conn, [(message_id, r.state, r.error) for r, message_id in whole])
        if parts:
            await conn.execute(
                statements["store_parts"],
                {
                    "message_ids": [m[0] for _, m in parts],
                    "part_ids": [r.part_id for r, _ in parts],
                    "parts": [m[1] for _, m in parts],
                    "states": [r.state for r, _ in parts],
                    "errors": [r.error for r, _ in parts],
                },
            )
            stored.decided += await _decide(conn, sorted({m[0] for _, m in parts}))
    return stored


async def store_message_receipts(conn: AsyncConnection, receipts: Sequence[MessageReceipt]) -> Stored:
    """An HTTP provider's receipts, all or none: with an id no message has, nothing is stored and
    ``unknown_ids`` names them (the transaction is rolled back)."""
    stored = Stored()
    first: dict[int, MessageReceipt] = {}
    for receipt in receipts:
        first.setdefault(receipt.message_id, receipt)
    async with conn.transaction():
        rows = await (await conn.execute(statements["lock_messages"], {"ids": sorted(first)})).fetchall()
        found: dict[int, bool] = {row[0]: row[2] for row in rows}
        stored.unknown_ids = sorted(set(first) - set(found))
        if stored.unknown_ids:
            return stored
        undecided = [r for r in first.values() if not found[r.message_id]]
        stored.already_decided = len(first) - len(undecided)
        if undecided:
            stored.decided = await _set(conn, [(r.message_id, r.state, r.error) for r in undecided])
    return stored


async def _set(conn: AsyncConnection, states: list[tuple[int, str, str | None]]) -> list[Decided]:
    states.sort()
    params = {"ids": [s[0] for s in states], "states": [s[1] for s in states], "errors": [s[2] for s in states]}
    rows = await (await conn.execute(statements["set_states"], params)).fetchall()
    return [Decided(message_id, state, seconds) for message_id, state, seconds in rows]


async def _decide(conn: AsyncConnection, ids: list[int]) -> list[Decided]:
    rows = await (await conn.execute(statements["decide"], {"ids": ids})).fetchall()
    return [Decided(message_id, state, seconds) for message_id, state, seconds in rows]


async def apply_waiting(conn: AsyncConnection) -> tuple[int, list[Decided]]:
    """Receipts kept unmatched whose message id is stored by now (see ``match_waiting``)."""
    async with conn.transaction():
        row = await (await conn.execute(statements["any_waiting"])).fetchone()
        if row is None or not row[0]:
            return 0, []
        await conn.execute(statements["plan_for_lookups"])
        found = await (await conn.execute(statements["match_waiting"])).fetchone()
        ids: list[int] = found[0] if found else []
        if not ids:
            return 0, []
        return len(ids), await _decide(conn, ids)


async def mark_unknown(conn: AsyncConnection, timeout_s: float, batch: int = 10_000, max_batches: int = 30) -> int:
    """Messages sent more than ``timeout_s`` ago without a receipt become ``unknown``, a batch per
    transaction (so that no writer waits long), up to ``max_batches`` a run."""
    marked = 0
    for _ in range(max_batches):
        async with conn.transaction():
            count = (await conn.execute(statements["mark_unknown"], {"timeout_s": timeout_s, "batch": batch})).rowcount
        marked += count
        if count < batch:
            break
    return marked


async def forget_stale(conn: AsyncConnection, timeout_s: float) -> int:
    async with conn.transaction():
        orphans = (await conn.execute(statements["forget_orphans"])).rowcount
        stale = (await conn.execute(statements["forget_stale_unmatched"], {"timeout_s": timeout_s})).rowcount
    return orphans + stale
