"""A real HTTP receiver of webhooks, on a thread and event loop of its own (a busy test loop never
delays its answers), recording every request it gets. Knobs: answer 500 to the next n requests,
hold every request unanswered (a hanging endpoint), or go down (its port closed) and come back on
the same port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.servers import free_port

START_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""
    at: float
    """time.monotonic() on arrival."""


@dataclass
class WebhookReceiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    fail_next: int = 0
    """Answer 500 to this many requests from now on."""
    hang: bool = False
    down: bool = False
    refuse_first: Callable[[dict[str, Any]], bool] | None = None
    """Answer 500 to the first attempt of each event (by its webhook-id) this says yes to."""
    _tried: set[str] = field(default_factory=set)
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: int = 0
    """Requests that reached the handler, answered or not (a hanging one is recorded only when answered)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    async def _handle(self, request: web.Request) -> web.Response:
        if self.down:
            # A connection kept alive from before the port closed: dropped without an answer.
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPServiceUnavailable
        with self._lock:
            self.arrivals += 1
        body = await request.read()
        if self.hang:
            await self._released.wait()
        with self._lock:
            status = 200
            if self.fail_next > 0:
                self.fail_next -= 1
                status = 500
            elif self.refuse_first is not None and request.headers["webhook-id"] not in self._tried:
                self._tried.add(request.headers["webhook-id"])
                if self.refuse_first(json.loads(body)):
                    status = 500
            self.requests.append(
                Received({k.lower(): v for k, v in request.headers.items()}, body, status, time.monotonic())
            )
        return web.Response(status=status, text="ok" if status == 200 else "receiver failing on purpose")

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(START_TIMEOUT_S)

    async def _open(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _close(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    def go_down(self) -> None:
        """Closes the port: connections are refused until ``come_back``."""
        self.down = True
        self._call(self._close())

    def come_back(self) -> None:
        self._call(self._open())
        self.down = False


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(port=free_port())
    loop = asyncio.new_event_loop()
    receiver._loop = loop
    thread = threading.Thread(target=loop.run_forever, name="webhook-receiver", daemon=True)
    thread.start()

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/hooks", receiver._handle)
        receiver._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await receiver._runner.setup()
        await receiver._open()

    receiver._call(start())
    try:
        yield receiver
    finally:

        async def stop() -> None:
            if receiver._runner is not None:
                await receiver._runner.cleanup()

        receiver.hang = False
        loop.call_soon_threadsafe(receiver._released.set)
        asyncio.run_coroutine_threadsafe(stop(), loop).result(START_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        loop.close()
