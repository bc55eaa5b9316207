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

from notification.lib.sql import load
from notification.messages.state import MESSAGE_ENUMS
from notification.stats.models import SHARDS

statements = load(__package__, "counters.sql", enums=MESSAGE_ENUMS)

COUNTER_LOCK_KEY = 1849975412
"""First key of the two-key advisory locks that reserve a counter shard (migration 0010)."""

_REBUILD = (
    "rebuild_forget_counts",
    "rebuild_forget_sends",
    "rebuild_count",
    "rebuild_sends",
    "rebuild_forget_clients",
    "rebuild_clients",
    "rebuild_forget_errors",
    "rebuild_errors",
    "rebuild_forget_providers",
    "rebuild_providers",
    "rebuild_forget_deliveries",
    "rebuild_deliveries",
)
_FOLD = (
    "fold_counts",
    "fold_empty_counts",
    "fold_drop_zero_counts",
    "fold_sends",
    "fold_empty_sends",
    "fold_drop_zero_sends",
    "fold_clients",
    "fold_empty_clients",
    "fold_errors",
    "fold_empty_errors",
    "fold_drop_zero_errors",
    "fold_providers",
    "fold_empty_providers",
    "fold_drop_zero_providers",
    "fold_deliveries",
    "fold_empty_deliveries",
    "fold_drop_zero_deliveries",
)


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
    counted_parts: int
    stored_parts: int
    counted_first_sent_at: dt.datetime | None
    stored_first_sent_at: dt.datetime | None
    counted_last_sent_at: dt.datetime | None
    stored_last_sent_at: dt.datetime | None

    def __str__(self) -> str:
        return (
            f"mailing {self.mailing_id} sends in {self.minute}: counted {self.counted_sent}"
            f" ({self.counted_first_sent_at} .. {self.counted_last_sent_at}),"
            f" stored {self.stored_sent} ({self.stored_first_sent_at} .. {self.stored_last_sent_at});"
            f" parts counted {self.counted_parts}, stored {self.stored_parts}"
        )


@dataclass(frozen=True, slots=True)
class ClientsDifference:
    counted: int
    stored: int

    def __str__(self) -> str:
        return f"clients: counted {self.counted}, stored {self.stored}"


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
class ProvidersDifference:
    """A (mailing, provider, status) whose provider counter disagrees with its messages."""

    mailing_id: int
    provider: str
    status: str
    counted_messages: int
    stored_messages: int

    def __str__(self) -> str:
        return (
            f"mailing {self.mailing_id} {self.status} by {self.provider}:"
            f" counted {self.counted_messages}, stored {self.stored_messages}"
        )


@dataclass(frozen=True, slots=True)
class DeliveriesDifference:
    """A (mailing, delivery state) whose counter disagrees with its messages."""

    mailing_id: int
    delivery_state: str
    counted_messages: int
    stored_messages: int

    def __str__(self) -> str:
        return (
            f"mailing {self.mailing_id} {self.delivery_state}:"
            f" counted {self.counted_messages}, stored {self.stored_messages}"
        )


Difference = (
    DeliveriesDifference
    | CountDifference
    | SendsDifference
    | ClientsDifference
    | ErrorsDifference
    | ProvidersDifference
)


@dataclass(frozen=True, slots=True)
class Verification:
    counts: list[CountDifference]
    sends: list[SendsDifference]
    clients: ClientsDifference | None = None
    errors: list[ErrorsDifference] = field(default_factory=list)
    providers: list[ProvidersDifference] = field(default_factory=list)
    deliveries: list[DeliveriesDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences()

    def differences(self) -> list[Difference]:
        clients = [self.clients] if self.clients else []
        return [*self.counts, *self.sends, *clients, *self.errors, *self.providers, *self.deliveries]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    count_rows: int
    sends_rows: int


async def verify_counters(conn: AsyncConnection) -> Verification:
    """Counters against a full GROUP BY of ``messages`` (and a count of ``clients``), read in one snapshot."""
    async with conn.transaction():
        await conn.execute(statements["read_only_snapshot"])
        cur = conn.cursor(row_factory=dict_row)
        counts = [CountDifference(**r) for r in await (await cur.execute(statements["counts_differences"])).fetchall()]
        sends = [SendsDifference(**r) for r in await (await cur.execute(statements["sends_differences"])).fetchall()]
        row = await (await cur.execute(statements["clients_difference"])).fetchone()
        errors = [ErrorsDifference(**r) for r in await (await cur.execute(statements["errors_differences"])).fetchall()]
        by_provider = await (await cur.execute(statements["providers_differences"])).fetchall()
        by_state = await (await cur.execute(statements["deliveries_differences"])).fetchall()
    clients = ClientsDifference(**row) if row is not None else None
    if clients is not None and clients.counted == clients.stored:
        clients = None
    providers = [ProvidersDifference(**r) for r in by_provider]
    deliveries = [DeliveriesDifference(**r) for r in by_state]
    return Verification(
        counts=counts, sends=sends, clients=clients, errors=errors, providers=providers, deliveries=deliveries
    )


async def rebuild_counters(conn: AsyncConnection) -> Rebuilt:
    """Counts every mailing's messages again (purged mailings keep theirs), writers kept out meanwhile."""
    async with conn.transaction():
        await conn.execute(statements["lock_writers_out"])
        rowcounts = [(await conn.execute(statements[name])).rowcount for name in _REBUILD]
    return Rebuilt(count_rows=rowcounts[2], sends_rows=rowcounts[3])


async def fold_counters(conn: AsyncConnection) -> int:
    """Sums the shards no writer holds into the lowest of them; returns how many rows went away."""
    async with conn.transaction():
        before = await _counter_rows(conn)
        reserved = await (
            await conn.execute(statements["reserve_idle_shards"], {"shards": SHARDS, "key": COUNTER_LOCK_KEY})
        ).fetchone()
        shards: list[int] = reserved[0] if reserved else []
        if not shards:
            return 0
        for name in _FOLD:
            await conn.execute(statements[name], {"target": shards[0], "others": shards[1:]})
        return before - await _counter_rows(conn)


async def _counter_rows(conn: AsyncConnection) -> int:
    row = await (await conn.execute(statements["counter_rows"])).fetchone()
    return int(row[0]) if row else 0
