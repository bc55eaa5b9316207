"""A fake SMS provider speaking the real provider's HTTP contract, with knobs for injecting failures.

Contract: ``POST {base}/v1/send/{msgId}`` with ``Authorization: Bearer <token>`` and a JSON body
``{"id": msgId, "phone": <int>, "text": "..."}``; success is HTTP 200 with ``{"code": 0, "message": "OK"}``.

Besides the contract it serves test-only endpoints under ``/_fake/`` to inspect what was received (counts per
msgId, and every request with its arrival and answer times, status and content) and to change the knobs at
runtime. Used by tests (``serve_fake_provider``), the dev command and benchmarks
(``run_fake_provider``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import heapq
import itertools
import logging
import random
import socket
import threading
import time
import uuid
from typing import Annotated, Any, NamedTuple, Self

import httpx
import msgspec
import uvicorn
from litestar import Litestar, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.types import Scope
from standardwebhooks.webhooks import Webhook

from notification.dev.running import RunningServer

__all__ = [
    "Arrival",
    "FakeProviderOptions",
    "FakeProviderState",
    "MessageRecord",
    "ReceiptPost",
    "Received",
    "RunningFakeProvider",
    "create_fake_provider_app",
    "get_fake_provider_state",
    "run_fake_provider",
    "serve_fake_provider",
]

logger = logging.getLogger(__name__)

_STATE_KEY = "fake_provider"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Hung requests poll for shutdown at this interval so stopping the server never waits out ``hang_s``.
_HANG_POLL_S = 0.05

_OK = b'{"code":0,"message":"OK"}'
# Each one breaks a different assumption a client might make about a 200 answer.
_MALFORMED_BODIES = (
    b"OK",
    b'{"code":0,"message":',
    b"<html><body>Bad Gateway</body></html>",
    b'["OK"]',
    b'{"status":"ok"}',
    b'{"code":"0","message":"OK"}',
    b"",
)


class FakeProviderOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Knobs of the fake provider.

    Every send is answered after ``latency_ms`` plus a uniform ``[0, latency_jitter_ms]``. ``down``, a wrong token
    (when ``token`` is set) and a body breaking the contract are answered 503, 401 and 400. A valid send then meets
    one injected outcome by the ``*_rate`` fractions, which are exclusive and sum to at most 1: 500, 429, 400,
    a malformed 200, or a ``hang_s`` stall before the normal success; the rest succeed.

    Receipts: with ``receipts_url`` set, each accepted message (a hung one too: the provider took it)
    gets a delivery receipt posted there after ``receipt_delay_ms``, signed with ``receipts_secret``
    the Standard Webhooks way; ``undelivered_rate`` of them undelivered (error ``"001"``),
    ``duplicate_rate`` posted twice, ``out_of_order`` spreading the delays so receipts overtake each
    other, up to ``receipt_batch`` receipts per request (a list when more than one). A post that is
    not answered 2xx is tried again a second later, as a provider retries its callbacks; one
    answered 4xx is dropped. No ``receipts_url``: no receipts at all.
    """

    token: str | None = None
    latency_ms: float = 0
    latency_jitter_ms: float = 0
    error_rate: float = 0
    rate_limit_rate: float = 0
    retry_after_s: float = 1
    reject_rate: float = 0
    malformed_rate: float = 0
    hang_rate: float = 0
    hang_s: float = 30
    down: bool = False
    receipts_url: str | None = None
    receipts_secret: str | None = None
    receipt_delay_ms: float = 0
    undelivered_rate: float = 0
    duplicate_rate: float = 0
    out_of_order: bool = False
    receipt_batch: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.rate_limit_rate, self.reject_rate, self.malformed_rate, self.hang_rate)
        if any(not 0 <= rate <= 1 for rate in (*rates, self.undelivered_rate, self.duplicate_rate)):
            msg = "every *_rate must be between 0 and 1"
            raise ValueError(msg)
        if self.receipt_batch < 1 or self.receipt_delay_ms < 0:
            msg = "receipt_batch must be at least 1 and receipt_delay_ms not negative"
            raise ValueError(msg)
        if sum(rates) > 1 + 1e-9:
            msg = "error_rate + rate_limit_rate + reject_rate + malformed_rate + hang_rate must not exceed 1"
            raise ValueError(msg)
        if min(self.latency_ms, self.latency_jitter_ms, self.retry_after_s, self.hang_s) < 0:
            msg = "latency_ms, latency_jitter_ms, retry_after_s and hang_s must not be negative"
            raise ValueError(msg)


class Received(msgspec.Struct, frozen=True):
    """Per-msgId counts of send requests received and answered with the success body."""

    requests: dict[int, int]
    accepted: dict[int, int]
    total_requests: int
    total_accepted: int


class Arrival(msgspec.Struct, frozen=True):
    """One send request as the fake saw it, by the wall clock (UTC) of the machine it runs on.

    ``answered_at`` and ``status`` stay None while the request is in flight; a hung request is answered when its
    hang ends even if its client gave up long before. ``accepted`` is True when the answer was the success body.
    ``phone`` and ``text`` are those of the body when it had them, of the right type.
    """

    msg_id: int
    arrived_at: dt.datetime
    answered_at: dt.datetime | None
    status: int | None
    accepted: bool
    phone: int | None
    text: str | None


class ReceiptPost(msgspec.Struct, frozen=True):
    """One receipt callback the fake posted: the receipts it carried and the answer's status
    (None: no answer, the connection failed)."""

    msg_ids: list[int]
    states: list[str]
    status: int | None
    posted_at: dt.datetime


class MessageRecord(msgspec.Struct, frozen=True):
    """What the fake saw for one msgId; ``last_body`` is the decoded JSON, or the raw text if it was not JSON;
    ``arrivals`` is every request for it, in arrival order."""

    msg_id: int
    requests: int
    accepted: int
    last_body: Any
    arrivals: list[Arrival] = msgspec.field(default_factory=list)


class _Reply(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str] | None = None


def _error(status: int, message: str) -> _Reply:
    return _Reply(status, msgspec.json.encode({"code": status, "message": message}))


_ACCEPTED = _Reply(200, _OK)
_DOWN = _error(503, "fake provider is down")
_SHUTTING_DOWN = _error(503, "fake provider is shutting down")
_UNAUTHORIZED = _error(401, "missing or invalid bearer token")
_FAILED = _error(500, "injected internal error")
_REJECTED = _error(400, "injected permanent rejection")
_BODY_FIELDS = (("id", int, "an integer"), ("phone", int, "an integer"), ("text", str, "a string"))


def _seconds_header(seconds: float) -> str:
    # Fractional seconds are outside RFC 9110 but let tests retry fast; plain digits keep clients' parsers happy.
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _decode_send_body(msg_id: int, raw_body: bytes) -> tuple[Any, str | None]:
    """The body as received (JSON, else text) and why it breaks the contract, if it does."""
    try:
        body = msgspec.json.decode(raw_body)
    except msgspec.DecodeError:
        return raw_body.decode("utf-8", "replace"), "body is not valid JSON"
    return body, _contract_violation(msg_id, body)


def _body_field(body: Any, name: str, kind: type) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    return value if type(value) is kind else None


class _Arrival:
    """An ``Arrival`` being written: created when the request arrives, completed when it is answered."""

    __slots__ = ("accepted", "answered_at", "arrived_at", "msg_id", "phone", "status", "text")

    def __init__(self, msg_id: int, body: Any) -> None:
        self.msg_id = msg_id
        self.arrived_at = dt.datetime.now(dt.UTC)
        self.phone: int | None = _body_field(body, "phone", int)
        self.text: str | None = _body_field(body, "text", str)
        self.answered_at: dt.datetime | None = None
        self.status: int | None = None
        self.accepted = False

    def answer(self, reply: _Reply) -> None:
        self.status = reply.status
        self.accepted = reply is _ACCEPTED
        self.answered_at = dt.datetime.now(dt.UTC)

    def freeze(self) -> Arrival:
        # Read answered_at first: a request answered meanwhile then shows as in flight, never half-answered.
        answered_at = self.answered_at
        if answered_at is None:
            return Arrival(self.msg_id, self.arrived_at, None, None, False, self.phone, self.text)
        return Arrival(self.msg_id, self.arrived_at, answered_at, self.status, self.accepted, self.phone, self.text)


def _contract_violation(msg_id: int, body: Any) -> str | None:
    if not _INT64_MIN <= msg_id <= _INT64_MAX:
        return "msgId must be a 64-bit integer"
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for field, kind, description in _BODY_FIELDS:
        # ``type() is`` rather than isinstance: JSON true/false must not pass as an integer.
        if type(body.get(field)) is not kind:
            return f"{field} must be {description}"
    if body["id"] != msg_id:
        return "id must equal the msgId in the path"
    return None


class FakeProviderState:
    """The fake's current options plus a record of the send requests it received."""

    def __init__(self, options: FakeProviderOptions | None = None) -> None:
        self.options = options or FakeProviderOptions()
        self._rng = random.Random(self.options.seed)  # noqa: S311 - injects failures, guards nothing
        self._closing = False
        self.requests: dict[int, int] = {}
        self.accepted: dict[int, int] = {}
        self.last_body: dict[int, Any] = {}
        self.total_requests = 0
        self.total_accepted = 0
        self._arrivals: list[_Arrival] = []
        self._receipts = _ReceiptSender(self)

    def set_options(self, /, **changes: Any) -> FakeProviderOptions:
        """Apply a partial change of the knobs; raises ``msgspec.ValidationError`` on unknown or invalid ones."""
        merged = msgspec.structs.asdict(self.options) | changes
        self.options = msgspec.convert(merged, FakeProviderOptions)
        if "seed" in changes:
            self._rng.seed(self.options.seed)
        return self.options

    def reset(self) -> None:
        """Forget everything received; the random stream restarts so a reset run is reproducible."""
        self.requests = {}
        self.accepted = {}
        self.last_body = {}
        self.total_requests = 0
        self.total_accepted = 0
        self._arrivals = []
        self._rng.seed(self.options.seed)
        self._receipts.posts.clear()

    def receipt_posts(self) -> list[ReceiptPost]:
        """Every receipt callback posted so far, in order."""
        return list(self._receipts.posts)

    def received(self) -> Received:
        # dict.copy() is atomic under the GIL, so another thread may snapshot while the server is writing.
        return Received(self.requests.copy(), self.accepted.copy(), self.total_requests, self.total_accepted)

    def arrivals(self, msg_ids: set[int] | None = None) -> list[Arrival]:
        """Every send request received (only those of ``msg_ids`` when given), in arrival order."""
        # list() of a list is atomic under the GIL, as dict.copy() is for received().
        return [a.freeze() for a in list(self._arrivals) if msg_ids is None or a.msg_id in msg_ids]

    def message(self, msg_id: int) -> MessageRecord | None:
        if msg_id not in self.requests:
            return None
        return MessageRecord(
            msg_id,
            self.requests[msg_id],
            self.accepted.get(msg_id, 0),
            self.last_body.get(msg_id),
            self.arrivals({msg_id}),
        )

    @property
    def closed(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Make hung requests answer now, so a server shutdown does not wait for them; this is final."""
        self._closing = True

    async def aclose(self) -> None:
        """Stops posting receipts (the server is shutting down)."""
        await self._receipts.aclose()

    async def send(self, msg_id: int, authorization: str | None, raw_body: bytes) -> _Reply:
        """Answer one ``POST /v1/send/{msgId}`` the way the current options say."""
        options = self.options
        body, violation = _decode_send_body(msg_id, raw_body)
        arrival = _Arrival(msg_id, body)
        self._arrivals.append(arrival)
        self.requests[msg_id] = self.requests.get(msg_id, 0) + 1
        self.total_requests += 1
        self.last_body[msg_id] = body
        reply = await self._answer(options, authorization, violation)
        if reply is _ACCEPTED:
            self.accepted[msg_id] = self.accepted.get(msg_id, 0) + 1
            self.total_accepted += 1
            if options.receipts_url:
                self._receipts.schedule(msg_id, options, self._rng)
        arrival.answer(reply)
        return reply

    async def _answer(self, options: FakeProviderOptions, authorization: str | None, violation: str | None) -> _Reply:
        delay_ms = options.latency_ms
        if options.latency_jitter_ms:
            delay_ms += self._rng.uniform(0, options.latency_jitter_ms)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)

        if options.down:
            return _DOWN
        if options.token is not None and authorization != f"Bearer {options.token}":
            return _UNAUTHORIZED
        if violation is not None:
            return _error(400, violation)
        return await self._injected_outcome(options)

    async def _injected_outcome(self, options: FakeProviderOptions) -> _Reply:
        # One draw against the cumulative rates keeps the outcomes exclusive, each with exactly its own rate.
        roll = self._rng.random()
        if (roll := roll - options.error_rate) < 0:
            return _FAILED
        if (roll := roll - options.rate_limit_rate) < 0:
            retry_after = {"Retry-After": _seconds_header(options.retry_after_s)}
            return _Reply(429, b'{"code":429,"message":"rate limited"}', retry_after)
        if (roll := roll - options.reject_rate) < 0:
            return _REJECTED
        if (roll := roll - options.malformed_rate) < 0:
            return _Reply(200, self._rng.choice(_MALFORMED_BODIES))
        if roll - options.hang_rate < 0 and not await self._hang(options.hang_s):
            return _SHUTTING_DOWN
        # A hung request counts as accepted even if its client gave up: the provider delivered it anyway.
        return _ACCEPTED

    async def _hang(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the fake started closing meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, _HANG_POLL_S))
        return False


class _ReceiptSender:
    """Posts the receipts due, in batches, from the server's own event loop."""

    def __init__(self, state: FakeProviderState) -> None:
        self._state = state
        self._due: list[tuple[float, int, int, str]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.posts: list[ReceiptPost] = []

    def schedule(self, msg_id: int, options: FakeProviderOptions, rng: random.Random) -> None:
        delay_s = options.receipt_delay_ms / 1000
        if options.out_of_order:
            delay_s *= rng.uniform(0.2, 3.0)
        state = "undelivered" if rng.random() < options.undelivered_rate else "delivered"
        copies = 2 if rng.random() < options.duplicate_rate else 1
        for _ in range(copies):
            heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), msg_id, state))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._post_due())

    async def _post_due(self) -> None:
        while self._due:
            now = time.monotonic()
            if self._due[0][0] > now:
                await asyncio.sleep(min(self._due[0][0] - now, 0.05))
                continue
            options = self._state.options
            batch: list[tuple[int, str]] = []
            while self._due and self._due[0][0] <= now and len(batch) < options.receipt_batch:
                _, _, msg_id, state = heapq.heappop(self._due)
                batch.append((msg_id, state))
            status = await self._post(options, batch)
            if status is None or status >= 500 or status == 429:
                for msg_id, state in batch:
                    heapq.heappush(self._due, (time.monotonic() + 1.0, next(self._order), msg_id, state))

    async def _post(self, options: FakeProviderOptions, batch: list[tuple[int, str]]) -> int | None:
        receipts = [
            {"id": msg_id, "status": state, **({"error": "001"} if state == "undelivered" else {})}
            for msg_id, state in batch
        ]
        body = msgspec.json.encode(receipts if len(receipts) > 1 else receipts[0]).decode()
        webhook_id = f"msg_{uuid.uuid4().hex}"
        now = dt.datetime.now(dt.UTC)
        headers = {"content-type": "application/json", "webhook-id": webhook_id}
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        if options.receipts_secret:
            headers["webhook-signature"] = Webhook(options.receipts_secret).sign(webhook_id, now, body)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        status: int | None
        try:
            status = (await self._client.post(str(options.receipts_url), content=body, headers=headers)).status_code
        except httpx.HTTPError:
            status = None
        self.posts.append(ReceiptPost([m for m, _ in batch], [s for _, s in batch], status, now))
        return status

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _log_unexpected(exc: Exception, scope: Scope) -> None:
    # Without this a bug in the fake would be a silent 500, indistinguishable from an injected error.
    if not isinstance(exc, HTTPException):
        logger.error("fake provider failed on %s", scope.get("path"), exc_info=exc)


def create_fake_provider_app(options: FakeProviderOptions | None = None) -> Litestar:
    """A fresh fake provider app with its own ``FakeProviderState`` (see ``get_fake_provider_state``)."""
    fake = FakeProviderState(options)

    @post("/v1/send/{msg_id:int}", status_code=200)
    async def send(request: Request[Any, Any, Any], msg_id: int) -> Response[bytes]:
        reply = await fake.send(msg_id, request.headers.get("authorization"), await request.body())
        return Response(reply.body, status_code=reply.status, media_type=MediaType.JSON, headers=reply.headers)

    @get("/_fake/received")
    async def received() -> Received:
        return fake.received()

    @get("/_fake/arrivals")
    async def arrivals(msg_id: Annotated[list[int] | None, Parameter(query="msg_id")] = None) -> list[Arrival]:
        return fake.arrivals(set(msg_id) if msg_id is not None else None)

    @get("/_fake/messages/{msg_id:int}")
    async def message(msg_id: int) -> MessageRecord:
        record = fake.message(msg_id)
        if record is None:
            raise NotFoundException(f"msgId {msg_id} was never received")
        return record

    @patch("/_fake/options")
    async def set_options(data: dict[str, Any]) -> FakeProviderOptions:
        try:
            return fake.set_options(**data)
        except msgspec.ValidationError as exc:
            raise ValidationException(str(exc)) from exc

    @post("/_fake/reset", status_code=204)
    async def reset() -> None:
        fake.reset()

    @get("/_fake/receipts")
    async def receipt_posts() -> list[ReceiptPost]:
        return fake.receipt_posts()

    return Litestar(
        route_handlers=[send, received, arrivals, message, set_options, reset, receipt_posts],
        on_shutdown=[fake.aclose],
        state=State({_STATE_KEY: fake}),
        openapi_config=None,
        # Litestar's default logging config reconfigures the root logger, which is not ours to touch.
        logging_config=None,
        after_exception=[_log_unexpected],
    )


def get_fake_provider_state(app: Litestar) -> FakeProviderState:
    """The state of an app made by ``create_fake_provider_app``."""
    state = app.state[_STATE_KEY]
    if not isinstance(state, FakeProviderState):
        msg = "not a fake provider app"
        raise TypeError(msg)
    return state


def run_fake_provider(host: str, port: int, options: FakeProviderOptions) -> None:
    """Serve the fake provider in the foreground until interrupted."""
    # What it records grows with every request, and a full collection over it would stall the
    # server for tens of milliseconds, bunching the arrival times it takes: collect rarely.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    uvicorn.run(
        create_fake_provider_app(options),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Hung requests would otherwise hold Ctrl+C for up to ``hang_s``.
        timeout_graceful_shutdown=1,
    )


class RunningFakeProvider(RunningServer):
    """A fake provider served by uvicorn in a background thread; a sync and an async context manager.

    ``with`` blocks only while starting and stopping; ``async with`` polls without blocking the event loop.
    """

    def __init__(
        self,
        options: FakeProviderOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.app = create_fake_provider_app(options)
        self.state = get_fake_provider_state(self.app)
        self.host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the fake provider is not running"
            raise RuntimeError(msg)
        return self._port

    @property
    def url(self) -> str:
        """Root of the server, where the ``/_fake/`` endpoints live."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The provider base URL as the service is configured with it, ``/v1`` included."""
        return f"{self.url}/v1"

    def received(self) -> Received:
        return self.state.received()

    def set_options(self, /, **changes: Any) -> FakeProviderOptions:
        return self.state.set_options(**changes)

    def message(self, msg_id: int) -> MessageRecord | None:
        return self.state.message(msg_id)

    def arrivals(self, msg_ids: set[int] | None = None) -> list[Arrival]:
        return self.state.arrivals(msg_ids)

    def reset(self) -> None:
        self.state.reset()

    def receipt_posts(self) -> list[ReceiptPost]:
        return self.state.receipt_posts()

    def _launch(self) -> None:
        if self._thread is not None or self.state.closed:
            msg = "a RunningFakeProvider runs once; create a new one"
            raise RuntimeError(msg)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # Binding here rather than in uvicorn gives the real port up front and queues early connections.
        sock = socket.create_server((self.host, self._requested_port), family=family)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Safety net for long latency_ms; hangs are released by FakeProviderState.close() already.
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(self._server, sock), name="fake-sms-provider", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        with sock:
            server.run(sockets=[sock])

    def _wait_until_serving(self) -> None:
        server, thread = self._server, self._thread
        assert server is not None
        assert thread is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                self._teardown()
                msg = "the fake provider failed to start"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                # No join: a server stuck in startup would never let it return; the thread is a daemon.
                self._begin_stop()
                self._teardown()
                msg = f"the fake provider did not start within {self._startup_timeout_s}s"
                raise TimeoutError(msg)
            time.sleep(0.005)

    def _begin_stop(self) -> None:
        self.state.close()
        if self._server is not None:
            self._server.should_exit = True

    def _teardown(self) -> None:
        self._server = None
        self._thread = None
        self._port = None

    def start(self) -> Self:
        self._launch()
        self._wait_until_serving()
        return self

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._begin_stop()
        thread.join()
        self._teardown()

    async def astart(self) -> Self:
        self._launch()
        # The waits poll and join; a worker thread keeps them off the caller's event loop.
        await asyncio.to_thread(self._wait_until_serving)
        return self


def serve_fake_provider(
    options: FakeProviderOptions | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningFakeProvider:
    """A fake provider to use as ``with serve_fake_provider() as fake:`` or ``async with ...``."""
    return RunningFakeProvider(options, host=host, port=port)
