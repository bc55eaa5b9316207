"""An SMSC reached over SMPP 3.4: one transceiver bind per process, submits pipelined up to the window.

The bind is kept by a background task: it takes a bind slot (shared by every process, see
``smpp_slots``), connects, binds, keeps the link alive with ``enquire_link`` when idle, and binds
again with a growing pause after a refusal or a lost connection. ``send`` hands a text to the bound
session as one or more ``submit_sm`` and classifies what comes back; it never raises for the SMSC's
failures and never outlives ``time_left_s``.

What may reach the SMSC twice: a ``submit_sm`` written and not answered when the connection drops
(or when its answer is overdue and the connection is dropped for it). Its send returns a transient
error and the message is sent again later, so per connection drop at most ``window`` submits are
repeated. The parts of a long text the SMSC already accepted are not resubmitted by this process when
the message is retried (they are remembered by message id); on another process they would be.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import ipaddress
import itertools
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import msgspec
import psycopg
import structlog

from notification.messages.models import ErrorKind
from notification.provider import smpp_wire as wire
from notification.provider.base import Capabilities, Outcome, OutgoingMessage, SendResult

if TYPE_CHECKING:
    from notification.provider.smpp_slots import BindSlots, SlotLease

logger = structlog.get_logger(__name__)

KIND = "smpp"

# The SMSC could not take the message now: the same submit may pass later (SMPP 3.4, 5.1.3).
THROTTLING_STATUSES = frozenset({wire.ESME_RTHROTTLED, wire.ESME_RMSGQFUL})
TRANSIENT_STATUSES = THROTTLING_STATUSES | {
    wire.ESME_RSYSERR,
    wire.ESME_RX_T_APPN,
    wire.ESME_RSUBMITFAIL,
    wire.ESME_RDELIVERYFAILURE,
    wire.ESME_RUNKNOWNERR,
    wire.ESME_RINVBNDSTS,
}
# Every other status refuses the message itself (its address, length, coding or parameters).

# Remembered accepted parts of long texts cut short by a failure, so a retry sends only the rest.
_PARTIALS_KEPT = 10_000
_RECEIPT_FIELD = re.compile(
    r"(id|sub|dlvrd|submit date|done date|stat|err|text):(.*?)(?= (?:sub|dlvrd|submit date|done date|stat|err|text):|$)"
)


class SmppSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach and use one SMSC account."""

    host: str
    port: int = 2775
    system_id: str
    password: str = ""
    system_type: str = ""
    tls: bool = False
    tls_ca_file: str | None = None
    """PEM file of the authorities the SMSC's certificate is checked against; unset: the system's."""
    plaintext: bool = False
    """Bind without TLS to an SMSC off this host: only over a private link the operator vouches for."""
    source_addr: str = ""
    source_addr_ton: int = 5
    """5: alphanumeric sender name; 1 with ``source_addr_npi`` 1 for an international number."""
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    window: int = 10
    """Submits written and not yet answered on the bind, at most."""
    binds: int = 1
    """Binds the account allows at once, shared by every process."""
    enquire_link_interval_s: float = 30.0
    response_timeout_s: float = 10.0
    long_text: wire.LongText = wire.LongText.UDH
    receipts: bool = True
    """Ask for a delivery receipt of every message (``registered_delivery`` 1)."""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    throttle_pause_s: float = 1.0
    """First pause of this provider after a throttling answer; doubled on each one in a row."""
    throttle_pause_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.binds < 1:
            msg = "window and binds must be at least 1"
            raise ValueError(msg)
        if not 0 < self.port < 65536:
            msg = "port must be between 1 and 65535"
            raise ValueError(msg)
        if min(self.enquire_link_interval_s, self.response_timeout_s, self.reconnect_min_s) <= 0:
            msg = "enquire_link_interval_s, response_timeout_s and reconnect_min_s must be positive"
            raise ValueError(msg)
        # The bind carries the password, and every submit a phone and a text: as the HTTP provider's
        # URL must be https:// off this host, so the SMSC's link must be TLS unless said otherwise.
        if not self.tls and not self.plaintext and not _on_this_host(self.host):
            msg = (
                f"tls must be true for an SMSC off this host ({self.host!r}): the password, phones and"
                " texts would cross the network in cleartext; plaintext=true accepts that over a private link"
            )
            raise ValueError(msg)

    def __repr__(self) -> str:
        # The password stays out of every log line and traceback that prints the settings.
        return f"SmppSettings(host={self.host!r}, port={self.port}, system_id={self.system_id!r}, password=***)"


def _on_this_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A ``deliver_sm`` from the SMSC: a delivery receipt or a mobile-originated message."""

    provider: str
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    text: str
    receipted_message_id: str | None
    """The SMSC's id of the message a receipt is about (the TLV, else the ``id:`` of its text)."""
    message_state: int | None
    receipt: dict[str, str]
    """The fields of a receipt's standard text (``id``, ``stat``, ``err``, ``done date``...)."""
    received_at: dt.datetime

    @property
    def is_receipt(self) -> bool:
        return bool(self.esm_class & wire.ESM_CLASS_RECEIPT)


DeliverHook = Callable[[InboundMessage], Awaitable[None]]
"""Called for each ``deliver_sm``; the SMSC gets its ``deliver_sm_resp`` only once this has returned,
so a receipt is acknowledged only once stored. If it raises, the answer is ESME_RX_T_APPN and the SMSC
delivers it again later: the hook sees a receipt at least once and must take repeats calmly."""


async def _store_nothing(_: InboundMessage) -> None:
    return None


def parse_receipt(text: str) -> dict[str, str]:
    return {match.group(1): match.group(2).strip() for match in _RECEIPT_FIELD.finditer(text)}


class SmppBindError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {wire.status_name(status)}")
        self.status = status


class _ConnectionLost(Exception):
    def __init__(self, reason: str, submitted: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.submitted = submitted
        """False when the submit was never written: it can go on the next connection at no risk."""


class _ResponseOverdue(Exception):
    pass


class _NoTimeLeft(Exception):
    def __init__(self, submitted: bool) -> None:
        super().__init__("no time left")
        self.submitted = submitted


class _Session:
    """One bound connection: the window, the answers awaited, keep-alive and ``deliver_sm``."""

    def __init__(
        self,
        provider: SmppProvider,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first_sequence: int,
    ) -> None:
        self._provider = provider
        self._settings = provider.settings
        self._reader = reader
        self._writer = writer
        self._sequences = itertools.count(first_sequence)
        self._window = asyncio.Semaphore(self._settings.window)
        self._awaited: dict[int, asyncio.Future[wire.Pdu]] = {}
        self._windowed: set[int] = set()
        self._last_activity = time.monotonic()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._tasks: set[asyncio.Task[None]] = set()
        # Hooks run to their end even when the connection does: cut mid-way, a hook could have
        # stored a receipt and be stopped before saying so.
        self._hooks: set[asyncio.Task[None]] = set()
        self._outbox = bytearray()

    def start(self) -> None:
        self._spawn(self._read_loop())
        self._spawn(self._keep_alive())

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next_sequence(self) -> int:
        # Sequence numbers run 1..0x7FFFFFFF (SMPP 3.4, 3.2).
        return next(self._sequences) % 0x7FFFFFFF + 1

    def _write(self, data: bytes) -> None:
        # PDUs written in one turn of the event loop leave in one system call: a send per PDU
        # was most of a busy bind's CPU time.
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox += data
        self._last_activity = time.monotonic()

    def _flush(self) -> None:
        if self._outbox and not self._writer.is_closing():
            self._writer.write(bytes(self._outbox))
        self._outbox.clear()

    def _request(
        self, command: str, windowed: bool, fields: dict[str, object] | None = None
    ) -> asyncio.Future[wire.Pdu]:
        sequence = self._next_sequence()
        future: asyncio.Future[wire.Pdu] = asyncio.get_running_loop().create_future()
        self._awaited[sequence] = future
        if windowed:
            self._windowed.add(sequence)
        self._write(wire.encode_fields(command, sequence, fields or {}))
        return future

    async def submit(self, fields: dict[str, object], deadline: float) -> wire.Pdu:
        """One ``submit_sm`` and its answer; the window slot is held until the answer comes or the
        connection ends, even when the caller stops waiting, so the SMSC never has more in flight."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _NoTimeLeft(submitted=False)
        try:
            async with asyncio.timeout(remaining):
                await self._window.acquire()
        except TimeoutError:
            raise _NoTimeLeft(submitted=False) from None
        if self.closed.is_set():
            self._window.release()
            raise _ConnectionLost(self.close_reason, submitted=False)
        future = self._request("submit_sm", True, fields)
        self._provider.submits_written += 1
        wait_s = min(deadline - time.monotonic(), self._settings.response_timeout_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(wait_s, 0))
        except TimeoutError:
            if deadline - time.monotonic() <= 0:
                raise _NoTimeLeft(submitted=True) from None
            self.abort("no submit_sm_resp within the response timeout")
            raise _ResponseOverdue from None

    def _answered(self, pdu: wire.Pdu) -> None:
        future = self._awaited.pop(pdu.sequence, None)
        if pdu.sequence in self._windowed:
            self._windowed.discard(pdu.sequence)
            self._window.release()
        if future is not None and not future.done():
            future.set_result(pdu)

    async def _read_loop(self) -> None:
        reason = "connection closed by the SMSC"
        try:
            while True:
                pdu = wire.decode(await wire.read_pdu(self._reader))
                self._last_activity = time.monotonic()
                if pdu.command.endswith("_resp") or pdu.command == "generic_nack":
                    self._answered(pdu)
                elif pdu.command == "deliver_sm":
                    hook: asyncio.Task[None] = asyncio.ensure_future(self._answer_deliver(pdu))
                    self._hooks.add(hook)
                    hook.add_done_callback(self._hooks.discard)
                elif pdu.command == "enquire_link":
                    self._write(wire.encode("enquire_link_resp", pdu.sequence))
                elif pdu.command == "unbind":
                    self._write(wire.encode("unbind_resp", pdu.sequence))
                    reason = "unbound by the SMSC"
                    break
                else:
                    self._write(wire.encode("generic_nack", pdu.sequence, status=wire.ESME_RINVCMDID))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except wire.ProtocolError as exc:
            reason = f"protocol error: {exc}"
        self.abort(reason)

    async def _answer_deliver(self, pdu: wire.Pdu) -> None:
        status = wire.ESME_ROK
        try:
            await self._provider.on_deliver(self._provider.inbound(pdu))
        except Exception:
            logger.exception("smpp deliver_sm hook failed", provider=self._provider.name)
            status = wire.ESME_RX_T_APPN
        if not self.closed.is_set():
            # Answered only now: a receipt acknowledged before it is stored could be lost.
            self._write(wire.encode("deliver_sm_resp", pdu.sequence, status=status, message_id=""))

    async def _keep_alive(self) -> None:
        interval = self._settings.enquire_link_interval_s
        while not self.closed.is_set():
            idle = time.monotonic() - self._last_activity
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            future = self._request("enquire_link", False)
            self._provider.enquire_links_sent += 1
            try:
                await asyncio.wait_for(asyncio.shield(future), self._settings.response_timeout_s)
            except TimeoutError:
                self.abort("no enquire_link_resp within the response timeout")
                return
            except _ConnectionLost:
                return

    def abort(self, reason: str) -> None:
        """End the connection at once; every submit awaiting its answer learns it may have reached the SMSC."""
        if self.closed.is_set():
            return
        self.close_reason = reason
        self.closed.set()
        for future in self._awaited.values():
            if not future.done():
                future.set_exception(_ConnectionLost(reason))
                # The exception is read by its submit, unless that submit already gave up.
                future.exception()
        self._awaited.clear()
        # Submits waiting for a window slot wake up, find the connection closed and write nothing.
        for _ in self._windowed:
            self._window.release()
        self._windowed.clear()
        self._flush()
        self._writer.close()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    async def unbind_and_close(self) -> None:
        if self._hooks:
            # Their answers go out before the unbind; a hook stuck past the response timeout is
            # stopped, unanswered, and the SMSC delivers that message again.
            _, stuck = await asyncio.wait(self._hooks, timeout=self._settings.response_timeout_s)
            for task in stuck:
                task.cancel()
        if not self.closed.is_set():
            future = self._request("unbind", False)
            with contextlib.suppress(TimeoutError, _ConnectionLost, ConnectionError):
                await asyncio.wait_for(asyncio.shield(future), min(self._settings.response_timeout_s, 2.0))
            self.abort("unbound")
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(slots=True)
class _Partial:
    """A long text some of whose parts the SMSC accepted: the rest is sent under the same reference."""

    reference: int
    message_ids: dict[int, str] = field(default_factory=dict)


class SmppProvider:
    """A :class:`~notification.provider.base.Provider` speaking SMPP 3.4 to one SMSC account.

    ``slots`` limits the binds of every process together (``None``: this process alone decides);
    ``on_deliver`` receives each receipt and mobile-originated message before the SMSC is answered."""

    def __init__(
        self,
        name: str,
        settings: SmppSettings,
        *,
        slots: BindSlots | None = None,
        on_deliver: DeliverHook | None = None,
    ) -> None:
        self._name = name
        self.settings = settings
        self._slots = slots
        self.on_deliver: DeliverHook = on_deliver or _store_nothing
        self._session: _Session | None = None
        self._bound = asyncio.Event()
        self._unbound = asyncio.Event()
        self._unbound.set()
        self._stopping = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._sequence_base = 0
        self._throttle_pause_s = 0.0
        self._held_until = 0.0
        self._partials: collections.OrderedDict[int, _Partial] = collections.OrderedDict()
        self.last_error: str | None = None
        self.last_bind_status: int | None = None
        self._bind_refused = False
        self.binds_made = 0
        self.enquire_links_sent = 0
        self.submits_written = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> str:
        return KIND

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(receipts=self.settings.receipts, inbound=True)

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    @property
    def held_for_s(self) -> float:
        """How long this provider still waits after the SMSC throttled it (0: it takes messages)."""
        return max(0.0, self._held_until - time.monotonic())

    async def open(self) -> None:
        """Start keeping the bind; sends wait for it (within their time), so this does not."""
        if self._keeper is None:
            self._stopping.clear()
            self._keeper = asyncio.create_task(self._keep_bound(), name=f"smpp-bind-{self._name}")

    async def wait_bound(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._bound.wait()
        return self._bound.is_set()

    async def aclose(self) -> None:
        """Unbind, close the connection and give the bind slot back."""
        self._stopping.set()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            await keeper
        # The hook may hold what it stores with (a connection): every deliver_sm is answered by now.
        close_hook = getattr(self.on_deliver, "aclose", None)
        if close_hook is not None:
            await close_hook()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # The bind --------------------------------------------------------------------------------

    async def _keep_bound(self) -> None:
        pause = self.settings.reconnect_min_s
        while not self._stopping.is_set():
            lease: SlotLease | None = None
            session: _Session | None = None
            try:
                if self._slots is not None:
                    lease = await self._slots.acquire()
                    if lease is None:
                        self._bind_failed(f"every bind slot of the account ({self.settings.binds}) is taken", True)
                        raise _NoSlot
                session = await self._connect_and_bind()
                self._session = session
                self.binds_made += 1
                self._bind_failed(None, refused=False)
                pause = self.settings.reconnect_min_s
                self._unbound.clear()
                self._bound.set()
                logger.info("smpp bound", provider=self._name, system_id=self.settings.system_id)
                await self._until_any(session.closed, self._stopping, lease.lost if lease else None)
                if not self._stopping.is_set():
                    reason = "bind slot lost" if lease and lease.lost.is_set() else session.close_reason
                    self.last_error = f"connection lost: {reason}"
                    logger.warning("smpp connection lost", provider=self._name, reason=reason)
            except _NoSlot:
                pass
            except SmppBindError as exc:
                self._bind_failed(str(exc), refused=True, status=exc.status)
                logger.warning("smpp bind refused", provider=self._name, status=wire.status_name(exc.status))
            except (OSError, TimeoutError, wire.ProtocolError, asyncio.IncompleteReadError, psycopg.Error) as exc:
                self._bind_failed(f"cannot bind: {type(exc).__name__}", refused=False)
                logger.warning("smpp connect failed", provider=self._name, error=type(exc).__name__)
            finally:
                self._bound.clear()
                self._unbound.set()
                self._session = None
                if session is not None:
                    await session.unbind_and_close()
                if lease is not None:
                    await lease.release()
            if self._stopping.is_set():
                return
            # Jitter keeps the workers of a restarted SMSC from binding again all in the same instant.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause * random.uniform(0.8, 1.2))  # noqa: S311
            pause = min(pause * 2, self.settings.reconnect_max_s)

    def _bind_failed(self, error: str | None, refused: bool, status: int | None = None) -> None:
        """What sends say while not bound: ``refused`` by the SMSC or the slots, or unreachable."""
        self.last_error = error
        self._bind_refused = refused
        self.last_bind_status = status

    @staticmethod
    async def _until_any(*events: asyncio.Event | None) -> None:
        waits = [asyncio.ensure_future(event.wait()) for event in events if event is not None]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _connect_and_bind(self) -> _Session:
        settings = self.settings
        context = ssl.create_default_context(cafile=settings.tls_ca_file) if settings.tls else None
        async with asyncio.timeout(settings.response_timeout_s):
            reader, writer = await asyncio.open_connection(settings.host, settings.port, ssl=context)
            try:
                writer.write(
                    wire.encode(
                        "bind_transceiver",
                        1,
                        system_id=settings.system_id,
                        password=settings.password,
                        system_type=settings.system_type,
                        interface_version=wire.INTERFACE_VERSION,
                        addr_ton=settings.source_addr_ton,
                        addr_npi=settings.source_addr_npi,
                        address_range="",
                    )
                )
                while True:
                    answer = wire.decode(await wire.read_pdu(reader))
                    if answer.command in {"bind_transceiver_resp", "generic_nack"} and answer.sequence == 1:
                        break
                if answer.status != wire.ESME_ROK:
                    raise SmppBindError(answer.status)
            except BaseException:
                writer.close()
                raise
        session = _Session(self, reader, writer, first_sequence=1)
        session.start()
        return session

    async def _session_within(self, deadline: float, after: _Session | None = None) -> _Session | None:
        """The bound session (another than ``after``, which has closed), if there is one before ``deadline``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                while True:
                    await self._bound.wait()
                    session = self._session
                    if session is not None and session is not after:
                        return session
                    # The keeper has yet to see ``after`` close: wait for it to move on.
                    await self._unbound.wait()
        return None

    # Sending ---------------------------------------------------------------------------------

    def _submit_fields(self, phone: str, part: wire.Part) -> dict[str, object]:
        settings = self.settings
        return {
            "service_type": "",
            "source_addr_ton": settings.source_addr_ton,
            "source_addr_npi": settings.source_addr_npi,
            "source_addr": settings.source_addr,
            "dest_addr_ton": settings.dest_addr_ton,
            "dest_addr_npi": settings.dest_addr_npi,
            "destination_addr": phone,
            "registered_delivery": 1 if settings.receipts else 0,
            **part.submit_fields(),
        }

    async def send(self, message: OutgoingMessage, time_left_s: float) -> SendResult:  # noqa: PLR0911
        """Submit ``message`` (all its parts); the SMSC's message id, or why not, classified."""
        if time_left_s <= 0:
            return SendResult(Outcome.TRANSIENT, "no time left before end_at", ErrorKind.DEADLINE)
        started = time.perf_counter()
        deadline = time.monotonic() + time_left_s
        held = self.held_for_s
        if held > 0:
            error = "SMSC throttled this provider; pausing"
            return SendResult(Outcome.TRANSIENT, error, ErrorKind.SMPP_THROTTLED, wire.ESME_RTHROTTLED, held)
        partial = self._partials.get(message.id)
        reference = partial.reference if partial is not None else wire.next_reference()
        try:
            parts = wire.split_text(message.text, self.settings.long_text, reference)
        except ValueError as exc:
            return SendResult(Outcome.PERMANENT, str(exc), ErrorKind.OTHER)
        # A message with hours left must not hold its worker for hours while the SMSC is away.
        session = await self._session_within(min(deadline, time.monotonic() + self.settings.response_timeout_s))
        if session is None:
            return self._not_bound(deadline, started)
        if partial is None or len(partial.message_ids) >= len(parts):
            partial = _Partial(reference)
        for index, part in enumerate(parts):
            if index in partial.message_ids:
                continue
            try:
                answer = await self._submit_part(session, message.phone, part, deadline)
            except _NoTimeLeft as exc:
                self._remember(message.id, partial)
                error = "no answer before end_at" if exc.submitted else "no time left before end_at"
                return SendResult(Outcome.TRANSIENT, error, ErrorKind.DEADLINE, latency_s=time.perf_counter() - started)
            except _ConnectionLost as exc:
                self._remember(message.id, partial)
                error = f"connection lost: {exc.reason}"
                return SendResult(
                    Outcome.TRANSIENT, error, ErrorKind.CONNECTION_ERROR, latency_s=time.perf_counter() - started
                )
            except _ResponseOverdue:
                self._remember(message.id, partial)
                return SendResult(
                    Outcome.TRANSIENT, "timeout", ErrorKind.TIMEOUT, latency_s=time.perf_counter() - started
                )
            if answer.status != wire.ESME_ROK:
                self._remember(message.id, partial)
                return self._refused(answer.status, time.perf_counter() - started)
            partial.message_ids[index] = answer.text_field("message_id")
        self._partials.pop(message.id, None)
        self._throttle_pause_s = 0.0
        # The first part's id first: receipts name each part's id; the message is delivered when all are.
        ids = ",".join(partial.message_ids[i] for i in range(len(parts)))
        return SendResult(Outcome.SENT, latency_s=time.perf_counter() - started, provider_message_id=ids)

    async def _submit_part(self, session: _Session, phone: str, part: wire.Part, deadline: float) -> wire.Pdu:
        """The part's answer; a part never written before its connection closed goes on the next one."""
        while True:
            try:
                return await session.submit(self._submit_fields(phone, part), deadline)
            except _ConnectionLost as exc:
                if exc.submitted:
                    raise
                next_session = await self._session_within(deadline, after=session)
                if next_session is None:
                    raise
                session = next_session

    def _not_bound(self, deadline: float, started: float) -> SendResult:
        latency = time.perf_counter() - started
        if time.monotonic() >= deadline:
            return SendResult(Outcome.TRANSIENT, "not bound before end_at", ErrorKind.DEADLINE, latency_s=latency)
        error = f"not bound: {self.last_error or 'binding'}"
        kind = ErrorKind.SMPP_BIND if self._bind_refused else ErrorKind.CONNECTION_ERROR
        return SendResult(
            Outcome.TRANSIENT, error, kind, self.last_bind_status, self.settings.reconnect_min_s, latency_s=latency
        )

    def _refused(self, status: int, latency: float) -> SendResult:
        error = f"SMSC answered {wire.status_name(status)}"
        if status in THROTTLING_STATUSES:
            self._throttle_pause_s = min(
                max(self._throttle_pause_s * 2, self.settings.throttle_pause_s), self.settings.throttle_pause_max_s
            )
            self._held_until = max(self._held_until, time.monotonic() + self._throttle_pause_s)
            return SendResult(
                Outcome.TRANSIENT, error, ErrorKind.SMPP_THROTTLED, status, self._throttle_pause_s, latency
            )
        outcome = Outcome.TRANSIENT if status in TRANSIENT_STATUSES else Outcome.PERMANENT
        return SendResult(outcome, error, ErrorKind.SMPP_STATUS, status, latency_s=latency)

    def _remember(self, message_id: int, partial: _Partial) -> None:
        if not partial.message_ids:
            return
        self._partials[message_id] = partial
        self._partials.move_to_end(message_id)
        while len(self._partials) > _PARTIALS_KEPT:
            self._partials.popitem(last=False)

    # Inbound ---------------------------------------------------------------------------------

    def inbound(self, pdu: wire.Pdu) -> InboundMessage:
        data_coding = pdu.int_field("data_coding") or 0
        esm_class = pdu.int_field("esm_class") or 0
        raw = pdu.bytes_field("short_message") or pdu.bytes_field("message_payload") or b""
        text = wire.decode_text(raw, data_coding)
        receipt = parse_receipt(text) if esm_class & wire.ESM_CLASS_RECEIPT else {}
        receipted = pdu.text_field("receipted_message_id").rstrip("\x00") or receipt.get("id") or None
        return InboundMessage(
            provider=self._name,
            source_addr=pdu.text_field("source_addr"),
            destination_addr=pdu.text_field("destination_addr"),
            esm_class=esm_class,
            data_coding=data_coding,
            short_message=raw,
            text=text,
            receipted_message_id=receipted,
            message_state=pdu.int_field("message_state"),
            receipt=receipt,
            received_at=dt.datetime.now(dt.UTC),
        )


class _NoSlot(Exception):
    pass
