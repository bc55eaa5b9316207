"""The batch watcher: renews the leases of the messages running batches still hold, and tells
each batch what became of its mailing (deleted, paused, re-planned, its text changed) and which of
its messages were settled elsewhere, four times a second. A database it cannot reach stops the
running batches: what they would send now could not be recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notification.delivery.batch import RunningBatch
from notification.delivery.queries import queries
from notification.provider.rate_limit import BudgetUnavailable, RateBudget

logger = structlog.get_logger(__name__)

DATABASE_UNREACHABLE = "the database could not be reached"
"""Why a batch stops when the watcher loses the database: what it would send now could not be
recorded. Its job hands the rest to a follow-up, as if the batch had run to its end."""
WATCH_INTERVAL_S = 0.25
"""How often a worker reads the mailings of its running batches: a deletion, a re-plan or a
text change reaches requests not yet started within this (plus one query)."""
WATCH_CONNECT_TIMEOUT_S = 2
WATCHER_APPLICATION_NAME = "notification batch watcher"
"""How the watcher's connection shows in ``pg_stat_activity``."""


class BatchWatcher:
    def __init__(
        self,
        conninfo: str,
        lease_s: float,
        running: Callable[[], Collection[RunningBatch]],
        budgets: Callable[[], Iterable[RateBudget]],
    ) -> None:
        self._conninfo = conninfo
        self._lease_s = lease_s
        self._running = running
        self._budgets = budgets
        """Read at each tick: the providers may have been rebuilt since."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="batch-watcher")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _watch(self) -> None:
        renew_every = max(1, round(self._lease_s / 4 / WATCH_INTERVAL_S))
        tick = 0
        # A connection of its own, not one from the pool: when the database goes away, a pool
        # makes its callers wait for a reconnection (30 s), while this fails at the next tick.
        conn: AsyncConnection | None = None
        try:
            while True:
                await asyncio.sleep(WATCH_INTERVAL_S)
                tick += 1
                if not self._running():
                    continue
                batches = list(self._running())
                try:
                    if conn is None or conn.closed:
                        conn = await AsyncConnection.connect(
                            self._conninfo,
                            autocommit=True,
                            connect_timeout=WATCH_CONNECT_TIMEOUT_S,
                            application_name=WATCHER_APPLICATION_NAME,
                        )
                    await self._watch_once(conn, batches, renew=tick % renew_every == 0)
                    # After the leases are renewed, over each budget's own connection: a 429
                    # another worker met holds this one's senders to that provider too.
                    for budget in list(self._budgets()):
                        await budget.refresh_hold()
                except BudgetUnavailable as exc:
                    logger.warning("batch watcher: the provider's shared hold could not be read", error=str(exc))
                except psycopg.OperationalError as exc:
                    # Answers arriving now could not be written, and each would be sent again:
                    # the requests not yet started wait for the database instead.
                    logger.warning("batch watcher: database unreachable, running batches stop", error=str(exc))
                    for batch in batches:
                        batch.stop(DATABASE_UNREACHABLE)
                    if conn is not None:
                        await conn.close()
                except Exception:
                    logger.exception("batch watcher failed")
        finally:
            if conn is not None:
                await conn.close()

    async def _watch_once(self, conn: AsyncConnection, batches: list[RunningBatch], *, renew: bool) -> None:
        cur = conn.cursor(row_factory=dict_row)
        mailing_ids = sorted({b.mailing_id for b in batches})
        rows = await (await cur.execute(queries["watch_mailings"], {"ids": mailing_ids})).fetchall()
        mailings = {r["id"]: r for r in rows}
        for batch in batches:
            batch.learn(mailings.get(batch.mailing_id))
        held = sorted(i for b in batches if not b.stopped for i in b.held())
        if not held:
            return
        # A message settled elsewhere (its client deleted) is not to be sent by the batch holding it.
        settled = await (await cur.execute(queries["settled_among"], {"ids": held})).fetchall()
        if settled:
            settled_ids = {r["id"] for r in settled}
            for batch in batches:
                batch.withdraw(settled_ids)
        if renew:
            await cur.execute(queries["renew_leases"], {"ids": held, "lease_s": self._lease_s})
