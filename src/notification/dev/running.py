"""The context-manager face shared by the dev stand-ins that serve from a background thread."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self


class RunningServer:
    """A server started by ``start`` and ended by ``stop``; a sync and an async context manager.

    ``astart`` and ``astop`` run the blocking start and stop in a worker thread, so ``async with`` keeps
    the caller's event loop free; a server that can wait more cheaply overrides ``astart``.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def astart(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()
