"""A fake SMSC speaking SMPP 3.4 over TCP, with knobs for injecting failures and a record of what it saw.

It takes transceiver (and transmitter/receiver) binds, answers ``submit_sm`` after a latency with a
message id or an injected command status, answers ``enquire_link``, and sends ``deliver_sm``: delivery
receipts in the standard text with the ``receipted_message_id`` and ``message_state`` parameters
(after a delay, some undelivered, duplicated or out of order, as the options say) and
mobile-originated messages on demand. PDUs go through the same codec as the SMPP provider's.

Used by tests (``serve_fake_smsc``, in a background thread of the test process), the dev command and
benchmarks (``run_fake_smsc``). The record is read from any thread; actions (dropping connections,
sending a receipt or a mobile-originated message) are carried out on the fake's own event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import itertools
import random
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any, Literal, Self

import msgspec

from notification.dev.running import RunningServer
from notification.provider import smpp_wire as wire

__all__ = [
    "BindRecord",
    "DeliverRecord",
    "FakeSmsc",
    "FakeSmscOptions",
    "RunningFakeSmsc",
    "SubmitRecord",
    "run_fake_smsc",
    "serve_fake_smsc",
]

_BIND_COMMANDS = {
    "bind_transceiver": "bind_transceiver_resp",
    "bind_transmitter": "bind_transmitter_resp",
    "bind_receiver": "bind_receiver_resp",
}
# message_state values of SMPP 3.4, 5.3.2.35.
MESSAGE_STATE_DELIVERED = 2
MESSAGE_STATE_UNDELIVERABLE = 5
_ANSWER_AFTER_RECEIPT_S = 0.2


class FakeSmscOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Knobs of the fake SMSC.

    Binds: ``system_id``, ``password`` and ``system_type`` are checked when set (a wrong one is answered
    ESME_RINVSYSID, ESME_RINVPASWD, ESME_RINVSYSTYP); ``refuse_binds`` answers every bind ESME_RBINDFAIL
    and ``max_binds`` refuses (ESME_RALYBND) a bind beyond that many bound at once.

    Submits are answered after ``latency_ms`` plus a uniform ``[0, latency_jitter_ms]``. More than
    ``max_window`` unanswered on one bind is a violation, recorded, and answered ESME_RTHROTTLED when
    ``window_excess`` is ``throttle``. Beyond ``max_submits_per_s`` on the whole SMSC a submit is
    answered ESME_RTHROTTLED; then one draw: ``throttle_rate`` of them ESME_RTHROTTLED, each
    ``status_rates`` entry (command status: share) that status; the rest are accepted.
    ``drop_after_submits``: the connection carrying that many-th submit from now on is cut without
    answering it (once; set it again to repeat).

    Receipts (``receipts``; off: none at all) follow each accepted submit asking for one after
    ``receipt_delay_ms``: ``undelivered_rate`` of them UNDELIV, ``duplicate_rate`` sent twice,
    ``out_of_order`` spreading the delays so receipts overtake each other; ``receipt_before_answer``
    sends each one 0.2 s before the submit's own ``submit_sm_resp``, as an SMSC whose delivery outran
    its answer does. A receipt the ESME does not acknowledge is delivered again, as an SMSC does: one
    answered with an error after ``redeliver_after_ms``, one left unanswered when its connection ends
    as soon as a receiver of the same system id is bound again.
    """

    system_id: str | None = None
    password: str | None = None
    system_type: str | None = None
    refuse_binds: bool = False
    max_binds: int | None = None
    latency_ms: float = 0
    latency_jitter_ms: float = 0
    max_window: int | None = None
    window_excess: Literal["throttle", "record"] = "throttle"
    max_submits_per_s: float | None = None
    throttle_rate: float = 0
    status_rates: dict[int, float] = msgspec.field(default_factory=dict)
    drop_after_submits: int | None = None
    receipts: bool = False
    receipt_delay_ms: float = 0
    undelivered_rate: float = 0
    duplicate_rate: float = 0
    out_of_order: bool = False
    receipt_before_answer: bool = False
    redeliver_after_ms: float = 200
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.throttle_rate, self.undelivered_rate, self.duplicate_rate, *self.status_rates.values())
        if any(not 0 <= rate <= 1 for rate in rates):
            msg = "every rate must be between 0 and 1"
            raise ValueError(msg)
        if self.throttle_rate + sum(self.status_rates.values()) > 1 + 1e-9:
            msg = "throttle_rate and status_rates must not add up to more than 1"
            raise ValueError(msg)
        if min(self.latency_ms, self.latency_jitter_ms, self.receipt_delay_ms) < 0:
            msg = "latency_ms, latency_jitter_ms and receipt_delay_ms must not be negative"
            raise ValueError(msg)


class BindRecord(msgspec.Struct, frozen=True):
    session: int
    command: str
    system_id: str
    system_type: str
    status: int
    at: dt.datetime

    @property
    def accepted(self) -> bool:
        return self.status == wire.ESME_ROK


class SubmitRecord(msgspec.Struct, frozen=True):
    """One ``submit_sm`` as the fake saw it; ``status`` is None while unanswered (or never, if its
    connection was cut); ``message_id`` is set when it was accepted."""

    session: int
    system_id: str
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    udh: bytes | None
    text: str
    """The part's text, decoded, without its concatenation header."""
    sar: tuple[int, int, int] | None
    """(reference, total, sequence) of the SAR parameters."""
    payload: bool
    """The text came in ``message_payload``."""
    in_flight: int
    """Submits unanswered on its bind when it arrived, itself included."""
    received_at: dt.datetime
    status: int | None
    message_id: str | None
    answered_at: dt.datetime | None


class DeliverRecord(msgspec.Struct, frozen=True):
    """One ``deliver_sm`` the fake sent; ``answer_status`` is None until the ESME answered."""

    session: int
    kind: Literal["receipt", "mo"]
    receipted_message_id: str | None
    text: str
    sent_at: dt.datetime
    answered_at: dt.datetime | None
    answer_status: int | None


class _Submit:
    __slots__ = ("answered_at", "fields", "message_id", "status")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.status: int | None = None
        self.message_id: str | None = None
        self.answered_at: dt.datetime | None = None

    def freeze(self) -> SubmitRecord:
        return SubmitRecord(**self.fields, status=self.status, message_id=self.message_id, answered_at=self.answered_at)


class _Deliver:
    __slots__ = (
        "answer_status",
        "answered_at",
        "fields",
        "kind",
        "receipted_message_id",
        "sent_at",
        "session",
        "system_id",
        "text",
    )

    def __init__(
        self,
        session: int,
        kind: Literal["receipt", "mo"],
        receipted: str | None,
        text: str,
        system_id: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self.session = session
        self.system_id = system_id
        self.fields = fields or {}
        self.kind: Literal["receipt", "mo"] = kind
        self.receipted_message_id = receipted
        self.text = text
        self.sent_at = dt.datetime.now(dt.UTC)
        self.answered_at: dt.datetime | None = None
        self.answer_status: int | None = None

    def freeze(self) -> DeliverRecord:
        return DeliverRecord(
            self.session,
            self.kind,
            self.receipted_message_id,
            self.text,
            self.sent_at,
            self.answered_at,
            self.answer_status,
        )


class _Connection:
    def __init__(self, number: int, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self.writer = writer
        self.bound_as: str | None = None
        self.can_receive = False
        self.in_flight = 0
        self.sequences = itertools.count(1)
        self.delivers: dict[int, _Deliver] = {}
        self.outbox = bytearray()

    def send(self, data: bytes) -> None:
        # Answers of one turn of the event loop leave in one system call, as a real SMSC batches them.
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outbox += data

    def flush(self) -> None:
        if self.outbox and not self.writer.is_closing():
            self.writer.write(bytes(self.outbox))
        self.outbox.clear()

    def cut(self) -> None:
        self.writer.close()


def _smpp_time(moment: dt.datetime) -> str:
    return moment.strftime("%y%m%d%H%M")


class FakeSmsc:
    """The fake SMSC's options, its live connections and its record; serve it with :meth:`serve`."""

    def __init__(self, options: FakeSmscOptions | None = None) -> None:
        self.options = options or FakeSmscOptions()
        self._rng = random.Random(self.options.seed)  # noqa: S311 - injects failures, guards nothing
        self._lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._numbers = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._binds: list[BindRecord] = []
        self._submits: list[_Submit] = []
        self._by_message_id: dict[str, _Submit] = {}
        self._delivers: list[_Deliver] = []
        self._submit_times: deque[float] = deque()
        self._until_drop: int | None = self.options.drop_after_submits
        self.enquire_links = 0
        self.unbinds = 0
        self.window_violations = 0
        self.max_in_flight = 0
        self.max_binds_seen = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    # Reading the record (any thread) ---------------------------------------------------------

    def set_options(self, /, **changes: Any) -> FakeSmscOptions:
        merged = msgspec.structs.asdict(self.options) | changes
        options = msgspec.convert(merged, FakeSmscOptions)
        with self._lock:
            self.options = options
            if "drop_after_submits" in changes:
                self._until_drop = options.drop_after_submits
            if "seed" in changes:
                self._rng = random.Random(options.seed)  # noqa: S311
        return options

    def binds(self) -> list[BindRecord]:
        with self._lock:
            return list(self._binds)

    def submits(self) -> list[SubmitRecord]:
        with self._lock:
            return [submit.freeze() for submit in self._submits]

    def delivers(self) -> list[DeliverRecord]:
        with self._lock:
            return [deliver.freeze() for deliver in self._delivers]

    @property
    def bound_now(self) -> int:
        with self._lock:
            return sum(1 for connection in self._connections.values() if connection.bound_as is not None)

    def reset(self) -> None:
        with self._lock:
            self._binds.clear()
            self._submits.clear()
            self._by_message_id.clear()
            self._delivers.clear()
            self.enquire_links = self.unbinds = self.window_violations = self.max_in_flight = 0
            self.max_binds_seen = sum(1 for c in self._connections.values() if c.bound_as is not None)

    # Actions (any thread; carried out on the fake's loop) -------------------------------------

    def _on_loop(self, action: Any) -> concurrent.futures.Future[Any]:
        if self.loop is None:
            msg = "the fake SMSC is not serving"
            raise RuntimeError(msg)
        return asyncio.run_coroutine_threadsafe(action, self.loop)

    def drop_connections(self) -> concurrent.futures.Future[Any]:
        """Cut every connection now, answering nothing more."""

        async def cut() -> None:
            for connection in list(self._connections.values()):
                connection.cut()

        return self._on_loop(cut())

    def send_receipt(self, message_id: str, stat: str = "DELIVRD", err: str = "000") -> concurrent.futures.Future[Any]:
        """A delivery receipt for an accepted ``message_id``, to a bind of the system id that submitted it."""
        return self._on_loop(self._send_receipt(message_id, stat, err))

    def send_receipts(
        self, message_ids: list[str], stat: str = "DELIVRD", err: str = "000"
    ) -> concurrent.futures.Future[Any]:
        """Receipts for many accepted ids at once, written as fast as the connection takes them."""

        async def send_all() -> None:
            for message_id in message_ids:
                await self._send_receipt(message_id, stat, err)

        return self._on_loop(send_all())

    def send_mo(
        self, source_addr: str, text: str, destination_addr: str = "", system_id: str | None = None
    ) -> concurrent.futures.Future[Any]:
        """A mobile-originated message (say "STOP") to a bind able to receive (of ``system_id`` if given)."""
        return self._on_loop(self._send_mo(source_addr, text, destination_addr, system_id))

    # Serving ---------------------------------------------------------------------------------

    async def serve(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> asyncio.Server:
        self.loop = asyncio.get_running_loop()
        return await asyncio.start_server(self._serve_connection, sock=sock, ssl=tls)

    async def close(self) -> None:
        for connection in list(self._connections.values()):
            connection.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(next(self._numbers), writer)
        self._connections[connection.number] = connection
        try:
            while True:
                pdu = wire.decode(await wire.read_pdu(reader))
                if not self._handle(connection, pdu):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError, wire.ProtocolError):
            pass
        finally:
            with self._lock:
                connection.bound_as = None
                self._connections.pop(connection.number, None)
            connection.cut()
            for deliver in connection.delivers.values():
                if deliver.kind == "receipt":
                    self._spawn(self._redeliver(deliver, 0))
            connection.delivers.clear()

    def _handle(self, connection: _Connection, pdu: wire.Pdu) -> bool:
        """Answer one PDU; False when the connection is to end."""
        if pdu.command in _BIND_COMMANDS:
            self._bind(connection, pdu)
        elif pdu.command == "submit_sm":
            self._submit(connection, pdu)
        elif pdu.command == "enquire_link":
            self.enquire_links += 1
            connection.send(wire.encode("enquire_link_resp", pdu.sequence))
        elif pdu.command == "unbind":
            self.unbinds += 1
            connection.send(wire.encode("unbind_resp", pdu.sequence))
            connection.flush()
            return False
        elif pdu.command in {"deliver_sm_resp", "generic_nack"}:
            deliver = connection.delivers.pop(pdu.sequence, None)
            if deliver is not None:
                with self._lock:
                    deliver.answer_status = pdu.status
                    deliver.answered_at = dt.datetime.now(dt.UTC)
                if pdu.status != wire.ESME_ROK and deliver.kind == "receipt":
                    self._spawn(self._redeliver(deliver, self.options.redeliver_after_ms / 1000))
        elif not pdu.command.endswith("_resp"):
            connection.send(wire.encode("generic_nack", pdu.sequence, status=wire.ESME_RINVCMDID))
        return True

    def _bind_status(self, connection: _Connection, pdu: wire.Pdu) -> int:  # noqa: PLR0911 - one answer a check
        options = self.options
        if connection.bound_as is not None:
            return wire.ESME_RALYBND
        if options.refuse_binds:
            return wire.ESME_RBINDFAIL
        if options.system_id is not None and pdu.text_field("system_id") != options.system_id:
            return wire.ESME_RINVSYSID
        if options.password is not None and pdu.text_field("password") != options.password:
            return wire.ESME_RINVPASWD
        if options.system_type is not None and pdu.text_field("system_type") != options.system_type:
            return wire.ESME_RINVSYSTYP
        if options.max_binds is not None and self.bound_now >= options.max_binds:
            return wire.ESME_RALYBND
        return wire.ESME_ROK

    def _bind(self, connection: _Connection, pdu: wire.Pdu) -> None:
        status = self._bind_status(connection, pdu)
        system_id = pdu.text_field("system_id")
        with self._lock:
            if status == wire.ESME_ROK:
                connection.bound_as = system_id
                connection.can_receive = pdu.command != "bind_transmitter"
                bound = sum(1 for c in self._connections.values() if c.bound_as is not None)
                self.max_binds_seen = max(self.max_binds_seen, bound)
            self._binds.append(
                BindRecord(
                    connection.number,
                    pdu.command,
                    system_id,
                    pdu.text_field("system_type"),
                    status,
                    dt.datetime.now(dt.UTC),
                )
            )
        connection.send(wire.encode(_BIND_COMMANDS[pdu.command], pdu.sequence, status=status, system_id="FAKESMSC"))

    def _submit(self, connection: _Connection, pdu: wire.Pdu) -> None:
        if connection.bound_as is None:
            connection.send(wire.encode("submit_sm_resp", pdu.sequence, status=wire.ESME_RINVBNDSTS))
            return
        connection.in_flight += 1
        submit = _Submit(self._fields(connection, pdu))
        with self._lock:
            self._submits.append(submit)
            self.max_in_flight = max(self.max_in_flight, connection.in_flight)
            drop = False
            if self._until_drop is not None:
                self._until_drop -= 1
                if self._until_drop <= 0:
                    self._until_drop = None
                    drop = True
        if drop:
            connection.cut()
            return
        # Decided on arrival: the window is what was unanswered when this submit came in.
        self._spawn(self._answer_submit(connection, pdu, submit, self._injected_status(connection)))

    def _fields(self, connection: _Connection, pdu: wire.Pdu) -> dict[str, Any]:
        esm_class = pdu.int_field("esm_class") or 0
        data_coding = pdu.int_field("data_coding") or 0
        payload = pdu.bytes_field("message_payload")
        user_data = payload if payload else (pdu.bytes_field("short_message") or b"")
        udh = None
        if esm_class & wire.ESM_CLASS_UDHI and user_data:
            udh, user_data = user_data[: user_data[0] + 1], user_data[user_data[0] + 1 :]
        reference = pdu.int_field("sar_msg_ref_num")
        sar = None
        if reference is not None:
            sar = (reference, pdu.int_field("sar_total_segments") or 0, pdu.int_field("sar_segment_seqnum") or 0)
        return {
            "session": connection.number,
            "system_id": connection.bound_as or "",
            "source_addr": pdu.text_field("source_addr"),
            "source_addr_ton": pdu.int_field("source_addr_ton") or 0,
            "source_addr_npi": pdu.int_field("source_addr_npi") or 0,
            "destination_addr": pdu.text_field("destination_addr"),
            "data_coding": data_coding,
            "esm_class": esm_class,
            "registered_delivery": pdu.int_field("registered_delivery") or 0,
            "udh": udh,
            "text": wire.decode_text(user_data, data_coding),
            "sar": sar,
            "payload": bool(payload),
            "in_flight": connection.in_flight,
            "received_at": dt.datetime.now(dt.UTC),
        }

    def _injected_status(self, connection: _Connection) -> int:
        options = self.options
        if options.max_window is not None and connection.in_flight > options.max_window:
            self.window_violations += 1
            if options.window_excess == "throttle":
                return wire.ESME_RTHROTTLED
        if options.max_submits_per_s is not None:
            now = time.monotonic()
            while self._submit_times and self._submit_times[0] <= now - 1:
                self._submit_times.popleft()
            if len(self._submit_times) >= options.max_submits_per_s:
                return wire.ESME_RTHROTTLED
            self._submit_times.append(now)
        roll = self._rng.random()
        if (roll := roll - options.throttle_rate) < 0:
            return wire.ESME_RTHROTTLED
        for status, rate in options.status_rates.items():
            if (roll := roll - rate) < 0:
                return status
        return wire.ESME_ROK

    async def _answer_submit(self, connection: _Connection, pdu: wire.Pdu, submit: _Submit, status: int) -> None:
        options = self.options
        delay_ms = options.latency_ms + (
            self._rng.uniform(0, options.latency_jitter_ms) if options.latency_jitter_ms else 0
        )
        try:
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
        finally:
            connection.in_flight -= 1
        if connection.writer.is_closing():
            return
        message_id = f"{next(self._message_ids):010x}" if status == wire.ESME_ROK else None
        with self._lock:
            if message_id is not None:
                self._by_message_id[message_id] = submit
        wants_receipt = message_id is not None and options.receipts and submit.fields["registered_delivery"] & 1
        if wants_receipt and options.receipt_before_answer and message_id is not None:
            await self._receipt_now(message_id)
            # Long enough for the ESME to store the receipt before it even knows the message's id.
            await asyncio.sleep(_ANSWER_AFTER_RECEIPT_S)
        with self._lock:
            submit.status = status
            submit.message_id = message_id
            submit.answered_at = dt.datetime.now(dt.UTC)
        connection.send(wire.encode("submit_sm_resp", pdu.sequence, status=status, message_id=message_id or ""))
        if wants_receipt and not options.receipt_before_answer and message_id is not None:
            self._spawn(self._scheduled_receipt(message_id))

    async def _scheduled_receipt(self, message_id: str) -> None:
        options = self.options
        delay_s = options.receipt_delay_ms / 1000
        if options.out_of_order:
            delay_s *= self._rng.uniform(0.2, 3.0)
        await asyncio.sleep(delay_s)
        await self._receipt_now(message_id)

    async def _receipt_now(self, message_id: str) -> None:
        options = self.options
        undelivered = self._rng.random() < options.undelivered_rate
        stat, err = ("UNDELIV", "001") if undelivered else ("DELIVRD", "000")
        copies = 2 if self._rng.random() < options.duplicate_rate else 1
        for _ in range(copies):
            await self._send_receipt(message_id, stat, err)

    def _receiver(self, system_id: str | None) -> _Connection | None:
        for connection in self._connections.values():
            if connection.can_receive and connection.bound_as is not None and system_id in {None, connection.bound_as}:
                return connection
        return None

    def _deliver(
        self, connection: _Connection, kind: Literal["receipt", "mo"], receipted: str | None, text: str, **fields: Any
    ) -> _Deliver:
        sequence = next(connection.sequences)
        deliver = _Deliver(connection.number, kind, receipted, text, connection.bound_as, fields)
        connection.delivers[sequence] = deliver
        with self._lock:
            self._delivers.append(deliver)
        connection.send(wire.encode("deliver_sm", sequence, **fields))
        return deliver

    async def _redeliver(self, deliver: _Deliver, delay_s: float) -> None:
        """The same receipt again, once a receiver of its system id is bound (a new ``deliver_sm``)."""
        if delay_s:
            await asyncio.sleep(delay_s)
        while (connection := self._receiver(deliver.system_id)) is None:  # noqa: ASYNC110  (binds come from outside)
            await asyncio.sleep(0.05)
        self._deliver(connection, deliver.kind, deliver.receipted_message_id, deliver.text, **deliver.fields)

    async def _send_receipt(self, message_id: str, stat: str, err: str) -> bool:
        submit = self._by_message_id.get(message_id)
        if submit is None:
            return False
        connection = self._receiver(submit.fields["system_id"])
        if connection is None:
            return False
        now = dt.datetime.now(dt.UTC)
        submitted = submit.fields["received_at"]
        delivered = "001" if stat == "DELIVRD" else "000"
        text = (
            f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{_smpp_time(submitted)} "
            f"done date:{_smpp_time(now)} stat:{stat} err:{err} text:{submit.fields['text'][:20]}"
        )
        state = MESSAGE_STATE_DELIVERED if stat == "DELIVRD" else MESSAGE_STATE_UNDELIVERABLE
        self._deliver(
            connection,
            "receipt",
            message_id,
            text,
            source_addr=submit.fields["destination_addr"],
            destination_addr=submit.fields["source_addr"],
            esm_class=wire.ESM_CLASS_RECEIPT,
            data_coding=0,
            short_message=text.encode("ascii", errors="replace"),
            receipted_message_id=message_id,
            message_state=state,
        )
        return True

    async def _send_mo(self, source_addr: str, text: str, destination_addr: str, system_id: str | None) -> bool:
        connection = self._receiver(system_id)
        if connection is None:
            return False
        encoding_gsm = all(c in wire._GSM7_ENCODE for c in text)
        data_coding = wire.DATA_CODING_GSM7 if encoding_gsm else wire.DATA_CODING_UCS2
        body = wire.gsm7_encode(text) if encoding_gsm else text.encode("utf-16-be")
        self._deliver(
            connection,
            "mo",
            None,
            text,
            source_addr=source_addr,
            destination_addr=destination_addr,
            esm_class=0,
            data_coding=data_coding,
            short_message=body,
        )
        return True


class RunningFakeSmsc(RunningServer):
    """A fake SMSC served on its own event loop in a background thread; a sync and an async context manager."""

    def __init__(
        self,
        options: FakeSmscOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.smsc = FakeSmsc(options)
        self._tls = tls
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()

    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the fake SMSC is not running"
            raise RuntimeError(msg)
        return self._port

    def __getattr__(self, name: str) -> Any:
        # The record and the actions are the FakeSmsc's: ``running.submits()``, ``running.send_mo(...)``.
        return getattr(self.smsc, name)

    def start(self) -> Self:
        if self._thread is not None:
            msg = "a RunningFakeSmsc runs once; create a new one"
            raise RuntimeError(msg)
        sock = socket.create_server((self.host, self._requested_port))
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name="fake-smsc", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            msg = "the fake SMSC did not start within 10 s"
            raise TimeoutError(msg)
        return self

    def _run(self, sock: socket.socket) -> None:
        asyncio.run(self._main(sock))

    async def _main(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await self.smsc.serve(sock, self._tls)
        self._started.set()
        async with server:
            await self._stop.wait()
            server.close()
            await self.smsc.close()

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        self._thread = None
        self._port = None


def serve_fake_smsc(
    options: FakeSmscOptions | None = None, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> RunningFakeSmsc:
    """A fake SMSC to use as ``with serve_fake_smsc() as fake:`` or ``async with ...`` (over TLS with ``tls``)."""
    return RunningFakeSmsc(options, host=host, port=port, tls=tls)


def run_fake_smsc(host: str, port: int, options: FakeSmscOptions) -> None:
    """Serve the fake SMSC in the foreground until interrupted."""

    async def main() -> None:
        smsc = FakeSmsc(options)
        sock = socket.create_server((host, port))
        server = await smsc.serve(sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
