"""The ``on_deliver`` hook of every SMPP provider: receipts to the database, in batches, each
``deliver_sm`` answered only once its receipt is committed.

Every ``deliver_sm`` the session reads runs the hook in a task of its own; a receipt joins the
batch being gathered and its task waits for that batch's commit. One batch is written at a time
per provider, so while one commits the next fills: under load, hundreds of receipts share one
transaction; alone, a receipt is written at once. A batch that fails fails each of its receipts'
hooks: the SMSC gets ESME_RX_T_APPN and delivers them again, and a process killed before the
commit never answered them, so the SMSC delivers them again too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from psycopg import AsyncConnection

from notification.provider.smpp import InboundMessage
from notification.receipts import metrics
from notification.receipts.models import PartState
from notification.receipts.store import PartReceipt, store_part_receipts

logger = structlog.get_logger(__name__)

MAX_BATCH = 1000
WRITERS = 2

# SMPP 3.4, 5.3.2.35 (message_state) and Appendix B (the receipt text's stat): the final states.
_STATE_BY_TLV = {
    2: PartState.DELIVERED,
    3: PartState.UNDELIVERED,  # EXPIRED
    4: PartState.UNDELIVERED,  # DELETED
    5: PartState.UNDELIVERED,  # UNDELIVERABLE
    8: PartState.UNDELIVERED,  # REJECTED
}
_STATE_BY_STAT = {
    "DELIVRD": PartState.DELIVERED,
    "EXPIRED": PartState.UNDELIVERED,
    "DELETED": PartState.UNDELIVERED,
    "UNDELIV": PartState.UNDELIVERED,
    "REJECTD": PartState.UNDELIVERED,
}


def part_receipt(inbound: InboundMessage) -> PartReceipt | None:
    """The final receipt a ``deliver_sm`` carries; None for an intermediate state (ENROUTE,
    ACCEPTD, UNKNOWN) or one naming no message."""
    if not inbound.receipted_message_id:
        return None
    stat = inbound.receipt.get("stat", "").upper()
    state = _STATE_BY_TLV.get(inbound.message_state or 0) or _STATE_BY_STAT.get(stat)
    if state is None:
        return None
    error = None
    if state is PartState.UNDELIVERED:
        err = inbound.receipt.get("err", "")
        error = err if err.strip("0") else (stat or f"message_state {inbound.message_state}")
    return PartReceipt(inbound.receipted_message_id, state.value, error)


class ReceiptBatcher:
    """Gathers one provider's receipts into batches and writes them, up to ``writers`` batches at
    once, each writer on a connection of its own: while one commits, another reads and locks, and
    the database's work spreads over its cores. Two batches holding one message (a duplicate, two
    parts) take its row in turn: every writer locks messages in id order."""

    def __init__(self, provider: str, conninfo: str, max_batch: int = MAX_BATCH, writers: int = WRITERS) -> None:
        self.provider = provider
        self._conninfo = conninfo
        self._max_batch = max_batch
        self._max_writers = writers
        self._pending: list[tuple[PartReceipt, asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._idle: list[AsyncConnection] = []

    async def store(self, receipt: PartReceipt) -> None:
        """Returns once the receipt is committed; raises when it could not be."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((receipt, future))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_batches())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        await future

    async def _write_batches(self) -> None:
        conn: AsyncConnection | None = None
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                try:
                    conn = conn or await self._connection()
                    stored = await store_part_receipts(conn, self.provider, [r for r, _ in batch])
                except Exception as exc:  # noqa: BLE001  (each waiting hook fails: the SMSC delivers again)
                    logger.warning("receipts not stored", provider=self.provider, receipts=len(batch), error=str(exc))
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                metrics.observe(self.provider, (r.state for r, _ in batch), stored.decided)
                if stored.unmatched:
                    logger.info(
                        "receipts kept until their message id is stored",
                        provider=self.provider,
                        receipts=stored.unmatched,
                    )
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            if conn is not None:
                self._idle.append(conn)

    async def _connection(self) -> AsyncConnection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await AsyncConnection.connect(self._conninfo, autocommit=True, connect_timeout=5)

    async def aclose(self) -> None:
        """Writes what is gathered, then closes the connections (a later receipt opens others)."""
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()


class DeliverHook:
    """What an SMPP provider runs for each ``deliver_sm`` before answering it: a receipt is stored here,
    a message from a phone by ``mobile_originated``."""

    def __init__(
        self,
        provider: str,
        conninfo: str,
        mobile_originated: Callable[[InboundMessage], Awaitable[None]],
    ) -> None:
        self.provider = provider
        self.receipts = ReceiptBatcher(provider, conninfo)
        self._mobile_originated = mobile_originated

    async def __call__(self, inbound: InboundMessage) -> None:
        if inbound.is_receipt:
            await self._receipt(inbound)
        else:
            await self._mobile_originated(inbound)

    async def _receipt(self, inbound: InboundMessage) -> None:
        receipt = part_receipt(inbound)
        if receipt is None:
            logger.debug(
                "intermediate receipt acknowledged",
                provider=self.provider,
                receipted_message_id=inbound.receipted_message_id,
                stat=inbound.receipt.get("stat"),
                message_state=inbound.message_state,
            )
            return
        await self.receipts.store(receipt)

    async def aclose(self) -> None:
        await self.receipts.aclose()
