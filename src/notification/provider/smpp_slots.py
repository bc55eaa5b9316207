"""Bind slots: the binds an SMSC account allows, shared by every process of the service.

A process takes a slot before it binds and gives it back when it unbinds. A slot is a PostgreSQL
session advisory lock held on a connection kept for that purpose, so a process that dies
(``SIGKILL`` included) gives its slot back the moment the server sees its connection end; no lease
to renew, no expiry to wait out. If that connection breaks while the process lives, the slot may
already be someone else's: the lease says so (``lost``) and the provider unbinds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import psycopg
import structlog

from notification.lib.sql import load

logger = structlog.get_logger(__name__)

queries = load(__package__, "smpp_slots.sql")

# How often a held slot's connection is checked: a broken one means the slot may be someone else's.
CHECK_INTERVAL_S = 2.0


class SlotLease(Protocol):
    lost: asyncio.Event
    """Set when the slot can no longer be counted on; the bind must end."""

    async def release(self) -> None: ...


class BindSlots(Protocol):
    async def acquire(self) -> SlotLease | None:
        """A free slot, or None when every one is taken."""
        ...


class PgSlotLease:
    def __init__(self, connection: psycopg.AsyncConnection[tuple[object, ...]], provider: str, slot: int) -> None:
        self._connection = connection
        self.provider = provider
        self.slot = slot
        self.lost = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_connection(), name=f"smpp-slot-{provider}-{slot}")

    async def _watch_connection(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            try:
                async with asyncio.timeout(CHECK_INTERVAL_S):
                    await self._connection.execute(queries["still_connected"])
            except (psycopg.Error, TimeoutError, OSError):
                logger.warning("smpp bind slot connection lost", provider=self.provider, slot=self.slot)
                self.lost.set()
                return

    async def release(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        with contextlib.suppress(psycopg.Error, OSError):
            if not self.lost.is_set():
                await self._connection.execute(
                    queries["give_back_slot"], {"provider": self.provider, "slot": self.slot}
                )
        # Closing the connection would give the lock back anyway; unlocking first says so at once.
        with contextlib.suppress(psycopg.Error, OSError):
            await self._connection.close()


class PgBindSlots:
    """``slots`` bind slots of ``provider``, counted in the PostgreSQL at ``conninfo``."""

    def __init__(self, conninfo: str, provider: str, slots: int) -> None:
        self._conninfo = conninfo
        self.provider = provider
        self.slots = slots

    async def acquire(self) -> PgSlotLease | None:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, application_name=f"smpp bind slot {self.provider}"[:63]
        )
        try:
            cursor = await connection.execute(queries["take_slot"], {"provider": self.provider, "slots": self.slots})
            row = await cursor.fetchone()
        except BaseException:
            await connection.close()
            raise
        if row is None:
            await connection.close()
            return None
        slot = row[0]
        assert isinstance(slot, int)
        return PgSlotLease(connection, self.provider, slot)

    async def held(self) -> int:
        """Slots of the provider held now by any process."""
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as connection:
            cursor = await connection.execute(queries["slots_held"], {"provider": self.provider})
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
