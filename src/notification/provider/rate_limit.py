"""A provider's rate limit, shared by every process that sends to it: a token bucket in PostgreSQL.

Each provider has its own row of ``provider_rate_budget``, keyed by its name: the limit of one is
never spent by sends through another. The row holds tokens (SMS parts), refilled by the time
elapsed at the provider's limit (``NOTIFICATION_PROVIDER_RATE_LIMIT``) per second and never above
zero: the bucket keeps no surplus, so idle time buys no burst. A process takes a block of tokens
with one UPDATE ... RETURNING; the bucket goes into debt, and the debt is how long the taker waits
before spending the block, so the takers line up in time by the row lock alone, with no polling
and no clock shared between hosts. While a process waits for one block it already reserves the
next, so the round trip to the database never leaves a stretch of the budget unclaimed. A process
thus holds at most its stock and two reserved blocks: a one-second window sees the limit plus a
few blocks at most (blocks are a hundredth of a second's parts, at least one message).

A 429 from the provider holds every sender of that provider back for its Retry-After: the process
that got it holds its own senders at once and writes ``blocked_until`` on the row; the others
read it when they next take a block and, four times a second, from their batch watcher. With no
limit set, the senders never touch the database: they only check that hold.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection

from notification.provider.queries import queries

logger = structlog.get_logger(__name__)

BLOCKS_PER_SECOND = 100
"""How finely the budget is cut: a block is a hundredth of a second's parts (at least one message),
so that what a one-second window may hold beyond the limit stays within a few percent of it."""
DEFAULT_HOLD_S = 1.0
"""How long a 429 without a usable Retry-After holds every sender."""
MAX_HOLD_S = 3600.0
"""A Retry-After is honoured up to an hour: a longer one is more likely a mistake than a plan."""


def _hold_s(retry_after_s: float | None) -> float:
    return min(MAX_HOLD_S, DEFAULT_HOLD_S if retry_after_s is None else retry_after_s)


@dataclass(frozen=True, slots=True)
class _Reservation:
    take: int
    usable_at: float
    """On this process's monotonic clock."""


class BudgetUnavailable(Exception):
    """The shared budget could not be read (database unreachable): send nothing now."""


class RateBudget:
    """One process's view of a provider's shared budget; ``admit`` before each request to it."""

    def __init__(self, provider: str, rate: float | None, conninfo: str) -> None:
        self.provider = provider
        self.rate = rate
        self.block = max(1, math.ceil(rate / BLOCKS_PER_SECOND)) if rate else 0
        self._conninfo = conninfo
        self._conn: AsyncConnection | None = None
        self._taking = asyncio.Lock()
        self._tokens = 0.0
        self._hold_until = 0.0
        self._held_in_database_until = 0.0
        self._writes: set[asyncio.Task[None]] = set()
        self._ahead: asyncio.Task[_Reservation] | None = None

    @property
    def hold_s(self) -> float:
        return max(0.0, self._hold_until - time.monotonic())

    async def admit(self, parts: int) -> bool:
        """Waits until a message of ``parts`` parts may be sent, and says whether it had to wait;
        raises BudgetUnavailable."""
        waited = False
        while True:
            now = time.monotonic()
            if self._hold_until > now:
                await asyncio.sleep(self._hold_until - now)
                waited = True
                continue
            if self.rate is None or self._spend(parts):
                return waited
            # One taker at a time: the others queue here and spend its block once it is usable.
            async with self._taking:
                if self._spend(parts):
                    return True
                await self._take_block(max(parts, self.block))
                waited = True

    def _spend(self, parts: int) -> bool:
        if self._tokens >= parts:
            self._tokens -= parts
            return True
        return False

    async def _take_block(self, take: int) -> None:
        """Adds a block to the stock once it is usable. While a sender waits for it, the next
        block is already being reserved, so that the round trip to the database overlaps the
        spending of this one instead of leaving a gap in the budget nobody claims."""
        ahead, self._ahead = self._ahead, None
        reservation = await (ahead if ahead is not None else self._reserve(take))
        self._ahead = asyncio.create_task(self._reserve(take))
        usable_in = reservation.usable_at - time.monotonic()
        if usable_in > 0:
            await asyncio.sleep(usable_in)
        self._tokens += reservation.take

    async def _reserve(self, take: int) -> _Reservation:
        assert self.rate is not None
        row = await self._execute(queries["take"], {"rate": self.rate, "take": take})
        asked = time.monotonic()
        tokens, hold_s = float(row[0]), float(row[1])
        self._learn_hold(hold_s, asked)
        return _Reservation(take, asked + max(0.0, -tokens / self.rate, self._hold_until - asked))

    def provider_asked_to_wait(self, retry_after_s: float | None) -> None:
        """A 429: hold this process's senders now, and every other process's through the row."""
        hold_s = _hold_s(retry_after_s)
        now = time.monotonic()
        until = now + hold_s
        if until <= self._hold_until:
            return
        self._hold_until = until
        logger.warning(
            "provider asked to slow down: every sender holds", provider=self.provider, hold_s=round(hold_s, 3)
        )
        # One write per lengthening of the hold, however many requests in flight meet the 429.
        if until > self._held_in_database_until + 0.1 * hold_s:
            self._held_in_database_until = until
            task = asyncio.create_task(self._write_hold(hold_s))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write_hold(self, hold_s: float) -> None:
        try:
            await self._execute(queries["hold"], {"hold_s": hold_s}, returns=False)
        except BudgetUnavailable:
            logger.warning("provider hold not shared: database unreachable", provider=self.provider, hold_s=hold_s)

    async def hold_everyone(self, retry_after_s: float | None) -> None:
        """The same as a 429 seen by a worker, for a process that waits for the write."""
        hold_s = _hold_s(retry_after_s)
        self._learn_hold(hold_s, time.monotonic())
        await self._execute(queries["hold"], {"hold_s": hold_s}, returns=False)

    async def refresh_hold(self) -> None:
        """Reads a hold another process wrote (a worker's batch watcher calls this four times a second,
        a test send before it asks for room); raises BudgetUnavailable."""
        row = await self._execute(queries["read_hold"], {})
        if row is not None:
            self._learn_hold(float(row[0] or 0), time.monotonic())

    def _learn_hold(self, hold_s: float, now: float) -> None:
        if hold_s > 0 and now + hold_s > self._hold_until:
            self._hold_until = now + hold_s
            self._held_in_database_until = max(self._held_in_database_until, self._hold_until)

    async def _execute(self, query: str, params: dict[str, Any], returns: bool = True) -> Any:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=5)
                # The row is a meter, not a record: a take lost in a crash costs nothing, while
                # waiting for each take's WAL flush would stall every sender behind the disk.
                await self._conn.execute(queries["meter_session"])
                await self._conn.execute(queries["ensure_budget"], {"provider": self.provider})
            cur = await self._conn.execute(query, params | {"provider": self.provider})
            return await cur.fetchone() if returns else None
        except psycopg.Error as exc:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None
            raise BudgetUnavailable(str(exc)) from exc

    async def aclose(self) -> None:
        tasks = [*self._writes, *([self._ahead] if self._ahead else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ahead = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
