"""Delivery of one batch of messages: claim, send with bounded concurrency, record.

A batch is safe to run twice, even at once: a claim leases each message for a while and only
pending, due, unleased messages can be claimed; recording ``sent`` only ever moves a message
there once. The worker that holds a lease renews it while the batch runs, so leases can be
short and a dead worker's messages come back soon.

A running batch stops starting requests as soon as it learns that it must: its mailing was
deleted, paused or re-planned (the process's watcher reads that from the database four times a
second), or one of its writes failed or the watcher lost the database (what it sends could not be
recorded). The messages it claimed and did not send go back untouched. A text change reaches
running batches the same way, without a re-plan, and so does the settling of a claimed message
elsewhere (its client deleted): the batch drops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import structlog
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row

from notification.config import Settings
from notification.delivery.breaker import CircuitBreaker
from notification.delivery.queries import composed, queries
from notification.messages.models import ErrorKind, MessageStatus
from notification.provider import metrics as provider_metrics
from notification.provider.client import Outcome, ProviderClient, SendResult
from notification.provider.rate_limit import BudgetUnavailable, RateBudget
from notification.send_window import is_open, next_opening, openings_by_zone

logger = structlog.get_logger(__name__)

DEADLINE_PASSED = "end_at passed before it could be sent"
HTTP_TOO_MANY_REQUESTS = 429
DATABASE_UNREACHABLE = "the database could not be reached"
"""Why a batch stops when the watcher loses the database: what it would send now could not be
recorded. Its job hands the rest to a follow-up, as if the batch had run to its end."""
END_MARGIN_S = 0.5
"""No provider request starts, and none is waited for, in the last this many seconds before a
mailing's end: a request started a few milliseconds before end_at would reach the provider after
it on a loaded machine, and its answer would be read after it. So every request reaches the
provider, and every ``sent_at`` is taken, before end_at; a message whose turn (or whose retry)
comes later than that expires instead."""
WATCH_INTERVAL_S = 0.25
"""How often a worker reads the mailings of its running batches: a deletion, a re-plan or a
text change reaches requests not yet started within this (plus one query)."""
WATCH_CONNECT_TIMEOUT_S = 2
WATCHER_APPLICATION_NAME = "notification batch watcher"
"""How the watcher's connection shows in ``pg_stat_activity``."""


def last_request_start(end_at: dt.datetime) -> dt.datetime:
    """When requests for a mailing ending at ``end_at`` stop starting (see END_MARGIN_S)."""
    return end_at - dt.timedelta(seconds=END_MARGIN_S)


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    client_id: int
    phone: str
    attempts: int
    timezone: str | None = None


Window = tuple[dt.time, dt.time]
"""A mailing's send window, local ``(start, end)``; ``end < start`` wraps past midnight."""


@dataclass(frozen=True, slots=True)
class WindowClosed(SendResult):
    """Not sent because the client's window had closed by the time of the request: the message
    waits for ``opens_at`` (None: not before end_at) and the claim's attempt does not count."""

    opens_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class NextState:
    """What an answer makes of a message."""

    status: MessageStatus
    error: str | None = None
    error_kind: ErrorKind | None = None
    due_at: dt.datetime | None = None


@dataclass(slots=True)
class BatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    expired: int = 0
    unsent: int = 0
    """Claimed, then given back unsent because the batch stopped."""
    stopped: str | None = None
    follow_up_at: dt.datetime | None = None
    skipped: str | None = None
    end_at: dt.datetime | None = None
    """The mailing's end, once the claim has read it (None: the batch was skipped)."""
    results: dict[int, SendResult] = field(default_factory=dict)

    def count(self, status: MessageStatus) -> None:
        if status is MessageStatus.SENT:
            self.sent += 1
        elif status is MessageStatus.FAILED:
            self.failed += 1
        elif status is MessageStatus.EXPIRED:
            self.expired += 1
        else:
            self.retrying += 1


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The batch's messages still pending, and when the next of them is due."""

    message_ids: list[int]
    at: dt.datetime


def retry_delay_s(settings: Settings, attempts: int, retry_after_s: float | None) -> float:
    """Capped exponential backoff with jitter; the provider's Retry-After wins when it asks for longer."""
    # The exponent is capped before it is raised: past about 1,000 attempts 2**n overflows a float.
    doublings = min(max(0, attempts - 1), 64)
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2**doublings)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not cryptography)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def next_state(
    settings: Settings, message: ClaimedMessage, result: SendResult, end_at: dt.datetime, now: dt.datetime
) -> NextState:
    if isinstance(result, WindowClosed):
        if result.opens_at is None:
            return NextState(
                MessageStatus.EXPIRED, "send window never opens before end_at", ErrorKind.WINDOW_NEVER_OPENS
            )
        return NextState(MessageStatus.PENDING, due_at=result.opens_at)
    if result.outcome is Outcome.SENT:
        return NextState(MessageStatus.SENT)
    if result.outcome is Outcome.PERMANENT:
        return NextState(MessageStatus.FAILED, result.error, result.error_kind)
    retry_at = now + dt.timedelta(seconds=retry_delay_s(settings, message.attempts, result.retry_after_s))
    # Refused before the request for want of time (DEADLINE): no later attempt could have more.
    if result.error_kind is ErrorKind.DEADLINE or retry_at >= last_request_start(end_at):
        return NextState(MessageStatus.EXPIRED, result.error, result.error_kind)
    return NextState(MessageStatus.PENDING, result.error, result.error_kind, retry_at)


class Delivery:
    """Sends batches for a worker process: one provider client, a fixed set of sender tasks
    (``provider_concurrency`` of them) shared by every batch the worker runs, a circuit breaker
    and the provider's shared rate budget in front of the provider, and a watcher that renews the
    leases of running batches and stops the ones whose mailing changed. Opened and closed with
    the worker (``start``/``aclose``)."""

    def __init__(self, settings: Settings, provider: ProviderClient) -> None:
        self.settings = settings
        self.provider = provider
        self.breaker = CircuitBreaker(capacity=settings.provider_concurrency)
        self.budget = RateBudget(settings.provider_rate_limit, settings.psycopg_conninfo)
        self._queue: asyncio.Queue[_Send] = asyncio.Queue()
        self._senders: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._running: set[_Batch] = set()

    def start(self) -> None:
        # Long-lived tasks pulling from one queue: no task per message, and the provider never
        # sees more than provider_concurrency requests from this process.
        self._senders = [
            asyncio.create_task(self._sender(), name=f"provider-sender-{i}")
            for i in range(self.settings.provider_concurrency)
        ]
        self._watcher = asyncio.create_task(self._watch(), name="batch-watcher")

    async def aclose(self) -> None:
        tasks = [*self._senders, *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._senders, self._watcher = [], None
        await self.budget.aclose()
        await self.provider.aclose()

    async def send_batch(
        self, conn: AsyncConnection, mailing_id: int, plan_version: int, message_ids: Sequence[int]
    ) -> BatchReport:
        """Claims what is due among ``message_ids`` and sends it; ``conn`` is the batch's own
        connection (taking one from the pool per write cost more than the write itself)."""
        if not self._senders:
            msg = "Delivery.start() was not called: the worker opens it"
            raise RuntimeError(msg)
        report = BatchReport()
        ids = list(message_ids)
        claim = await self._claim(conn, mailing_id, plan_version, ids, report)
        if claim is None:
            return report
        text, parts, end_at, window, claimed = claim
        report.claimed, report.end_at = len(claimed), end_at
        batch = _Batch(self, conn, mailing_id, plan_version, text, parts, end_at, window, claimed, report)
        self._running.add(batch)
        try:
            for message in claimed:
                self._queue.put_nowait(_Send(batch, message))
            await batch.written_all()
        except BaseException:
            batch.stop("its results could not be written")
            raise
        finally:
            self._running.discard(batch)
        if batch.unsent:
            await conn.execute(queries["give_back_unsent"], {"ids": batch.unsent})
            report.unsent = len(batch.unsent)
        report.stopped = batch.stopped
        return report

    async def follow_up(self, conn: AsyncConnection, ids: list[int], end_at: dt.datetime) -> FollowUp | None:
        """Whatever is still pending in the batch is due again at some time, or expires now if
        that is at or after end_at; to be called in the transaction that defers the follow-up."""
        cur = conn.cursor(row_factory=dict_row)
        remaining = await (await cur.execute(queries["remaining_in_batch"], {"ids": ids})).fetchone()
        if remaining is None or not remaining["ids"]:
            return None
        next_at: dt.datetime = remaining["next_at"]
        if next_at >= last_request_start(end_at):
            await cur.execute(queries["expire_in_batch"], {"ids": remaining["ids"], "reason": None})
            return None
        return FollowUp(remaining["ids"], next_at)

    async def _claim(
        self, conn: AsyncConnection, mailing_id: int, plan_version: int, ids: list[int], report: BatchReport
    ) -> tuple[str, int, dt.datetime, Window | None, list[ClaimedMessage]] | None:
        cur = conn.cursor(row_factory=dict_row)
        mailing = await (await cur.execute(queries["mailing_for_batch"], {"mailing_id": mailing_id})).fetchone()
        if mailing is None:
            report.skipped = "mailing deleted"
            return None
        if mailing["plan_version"] != plan_version:
            report.skipped = "plan superseded"
            return None
        if mailing["paused_at"] is not None:
            # Its messages stay pending, unclaimed: the resume plans them again.
            report.skipped = "mailing paused"
            return None
        if mailing["now"] >= last_request_start(mailing["end_at"]):
            async with conn.transaction():
                await cur.execute(queries["expire_in_batch"], {"ids": ids, "reason": DEADLINE_PASSED})
            report.expired = cur.rowcount
            report.skipped = "mailing ended"
            return None
        params = {"ids": ids, "mailing_id": mailing_id, "lease_s": self.settings.send_lease_s}
        window: Window | None = None
        if mailing["send_window_start"] is not None and mailing["send_window_end"] is not None:
            window = (mailing["send_window_start"], mailing["send_window_end"])
        async with conn.transaction():
            if window is None:
                rows = await (await cur.execute(queries["claim"], params)).fetchall()
            else:
                params |= {"window_start": window[0], "window_end": window[1]}
                rows = await (await cur.execute(queries["claim_in_window"], params)).fetchall()
                await self._wait_for_window(cur, params, window, mailing["end_at"], report)
        claimed = [ClaimedMessage(r["id"], r["client_id"], r["phone"], r["attempts"], r["timezone"]) for r in rows]
        return mailing["text"], mailing["parts"], mailing["end_at"], window, claimed

    async def _wait_for_window(
        self,
        cur: AsyncCursor[dict[str, Any]],
        params: dict[str, Any],
        window: Window,
        end_at: dt.datetime,
        report: BatchReport,
    ) -> None:
        """The batch's due messages that the claim left because their client's window is closed
        (a retry's backoff, or a batch mixing zones, brought them here early) move to their zone's
        next opening, computed once per distinct zone; the follow-up job then waits for it."""
        zone_rows = await (await cur.execute(queries["closed_zones_in_batch"], params)).fetchall()
        if not zone_rows:
            return
        now = (await (await cur.execute(queries["database_now"])).fetchone() or {})["now"]
        zones, openings = openings_by_zone(window[0], window[1], (r["timezone"] for r in zone_rows), now)
        if not zones:
            return
        changed_params = params | {"zones": zones, "openings": openings, "end_at": end_at}
        changed = await (await cur.execute(_WAIT_FOR_OPENING_IN_BATCH, changed_params)).fetchall()
        report.expired += sum(1 for r in changed if r["status"] == MessageStatus.EXPIRED)

    async def _sender(self) -> None:
        while True:
            send = await self._queue.get()
            batch, message = send.batch, send.message
            if not batch.may_send(message):
                batch.give_back(message)
                continue
            try:
                result = await self._send_one(message, batch)
            except Exception as exc:  # noqa: BLE001  (a bug here must not kill the sender)
                result = SendResult(Outcome.TRANSIENT, f"unexpected error: {type(exc).__name__}", ErrorKind.OTHER)
            if result is None:
                batch.give_back(message)
            else:
                batch.answered(message, result)

    async def _send_one(self, message: ClaimedMessage, batch: _Batch) -> SendResult | None:  # noqa: PLR0911  (each return is a reason for no request)
        """The provider's answer, or None when no request was made and the message goes back
        untouched (its batch stopped, or the rate budget could not be read)."""
        now = dt.datetime.now(dt.UTC)
        early = self._not_now(message, batch, now)
        if early is not None:
            return early
        held = await self.breaker.admit()
        result: SendResult | None = None
        try:
            if not batch.may_send(message):
                return None
            if held:
                # The breaker held the request a while: its mailing's end or its client's window may
                # have come meanwhile. An answer not asked for is not the provider's failure either.
                now = dt.datetime.now(dt.UTC)
                early = self._not_now(message, batch, now)
                if early is not None:
                    return early
            try:
                waited = await self.budget.admit(batch.parts)
            except BudgetUnavailable:
                return None
            if waited:
                # The same, after a wait for room in the provider's rate budget.
                now = dt.datetime.now(dt.UTC)
                if not batch.may_send(message):
                    return None
                early = self._not_now(message, batch, now)
                if early is not None:
                    return early
            time_left_s = (last_request_start(batch.end_at) - now).total_seconds()
            result = await self.provider.send(message.id, message.phone, batch.text, time_left_s)
        finally:
            await self.breaker.record(result)
        if result.status_code == HTTP_TOO_MANY_REQUESTS:
            self.budget.provider_asked_to_wait(result.retry_after_s)
        provider_metrics.observe(result)
        batch.log.info(
            "provider answered",
            message_id=message.id,
            client_id=message.client_id,
            outcome=result.outcome.value,
            status_code=result.status_code,
            error=result.error,
            attempt=message.attempts,
            latency_ms=round(result.latency_s * 1000, 1),
        )
        return result

    def _not_now(self, message: ClaimedMessage, batch: _Batch, now: dt.datetime) -> SendResult | None:
        """A reason not to send this message now: the mailing's end is too close (the wait in the
        queue may have run up to it), or the client's window has closed meanwhile."""
        if now >= last_request_start(batch.end_at):
            return SendResult(Outcome.TRANSIENT, "end_at passed before the request", ErrorKind.DEADLINE)
        if batch.window is not None and message.timezone is not None:
            tz = ZoneInfo(message.timezone)
            if not is_open(batch.window[0], batch.window[1], tz, now):
                opens_at = next_opening(batch.window[0], batch.window[1], tz, now)
                batch.log.info("send window closed", message_id=message.id, opens_at=opens_at.isoformat())
                return WindowClosed(Outcome.TRANSIENT, opens_at=opens_at if opens_at < batch.end_at else None)
        return None

    async def _watch(self) -> None:
        """Renews the leases of the messages running batches still hold, and tells each batch
        what became of its mailing. A database it cannot reach stops the running batches."""
        renew_every = max(1, round(self.settings.send_lease_s / 4 / WATCH_INTERVAL_S))
        tick = 0
        # A connection of its own, not one from the pool: when the database goes away, a pool
        # makes its callers wait for a reconnection (30 s), while this fails at the next tick.
        conn: AsyncConnection | None = None
        try:
            while True:
                await asyncio.sleep(WATCH_INTERVAL_S)
                tick += 1
                if not self._running:
                    continue
                batches = list(self._running)
                try:
                    if conn is None or conn.closed:
                        conn = await AsyncConnection.connect(
                            self.settings.psycopg_conninfo,
                            autocommit=True,
                            connect_timeout=WATCH_CONNECT_TIMEOUT_S,
                            application_name=WATCHER_APPLICATION_NAME,
                        )
                    await self._watch_once(conn, batches, renew=tick % renew_every == 0)
                    # After the leases are renewed, over the budget's own connection: a 429 another
                    # worker met holds this one's senders too.
                    await self.budget.refresh_hold()
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

    async def _watch_once(self, conn: AsyncConnection, batches: list[_Batch], *, renew: bool) -> None:
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
            await cur.execute(queries["renew_leases"], {"ids": held, "lease_s": self.settings.send_lease_s})


_WAIT_FOR_OPENING_IN_BATCH = composed("wait_for_opening", scope=sql.SQL(queries["due_in_batch"]))


@dataclass(frozen=True, slots=True)
class _Send:
    batch: _Batch
    message: ClaimedMessage


class _Batch:
    """One batch in flight: collects answers and writes them a few at a time, so that a worker
    dying mid-batch re-sends at most what was in flight or not yet written, never the whole batch."""

    def __init__(
        self,
        delivery: Delivery,
        conn: AsyncConnection,
        mailing_id: int,
        plan_version: int,
        text: str,
        parts: int,
        end_at: dt.datetime,
        window: Window | None,
        claimed: list[ClaimedMessage],
        report: BatchReport,
    ) -> None:
        self.mailing_id = mailing_id
        self.plan_version = plan_version
        self.text = text
        self.parts = parts
        """SMS parts of each message of this text: what it costs of the provider's rate budget."""
        self.end_at = end_at
        self.window = window
        self.log = logger.bind(mailing_id=mailing_id)
        self.stopped: str | None = None
        self.unsent: list[int] = []
        self.withdrawn: set[int] = set()
        """Claimed messages settled since, elsewhere (their client was deleted): never to be sent."""
        self._delivery = delivery
        self._conn = conn
        self._report = report
        self._pending_ids = {m.id for m in claimed}
        self._answers: list[tuple[ClaimedMessage, SendResult, dt.datetime]] = []
        self._wake = asyncio.Event()

    def held(self) -> set[int]:
        """Claimed messages with no answer yet: their leases must outlive the batch's work."""
        return self._pending_ids

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            self.log.info("batch stopped", reason=reason, unsent_queued=len(self._pending_ids))

    def may_send(self, message: ClaimedMessage) -> bool:
        return self.stopped is None and message.id not in self.withdrawn

    def withdraw(self, settled_ids: set[int]) -> None:
        self.withdrawn |= settled_ids & self._pending_ids

    def learn(self, mailing: dict[str, Any] | None) -> None:
        """What the watcher read of this batch's mailing."""
        if mailing is None:
            self.stop("mailing deleted")
        elif mailing["plan_version"] != self.plan_version:
            self.stop("plan superseded")
        elif mailing["paused_at"] is not None:
            self.stop("mailing paused")
        elif mailing["text"] != self.text:
            self.text, self.parts = mailing["text"], mailing["parts"]

    def answered(self, message: ClaimedMessage, result: SendResult) -> None:
        """Called by the senders; never waits, so a slow write never holds a request slot."""
        self._report.results[message.id] = result
        self._answers.append((message, result, dt.datetime.now(dt.UTC)))
        self._pending_ids.discard(message.id)
        if len(self._answers) >= self._delivery.settings.result_flush_size or not self._pending_ids:
            self._wake.set()

    def give_back(self, message: ClaimedMessage) -> None:
        self.unsent.append(message.id)
        self._pending_ids.discard(message.id)
        if not self._pending_ids:
            self._wake.set()

    async def written_all(self) -> None:
        while self._pending_ids:
            await self._wake.wait()
            self._wake.clear()
            async with self._conn.transaction():
                await self._write()
        # Answers that arrived during the last write.
        async with self._conn.transaction():
            await self._write()

    async def _write(self) -> None:
        taken, self._answers = self._answers, []
        if not taken:
            return
        now = dt.datetime.now(dt.UTC)
        settings = self._delivery.settings
        states = [next_state(settings, m, r, self.end_at, now) for m, r, _ in taken]
        for state in states:
            self._report.count(state.status)
        await self._conn.execute(
            queries["record_answers"],
            {
                "ids": [m.id for m, _, _ in taken],
                "statuses": [s.status.value for s in states],
                "errors": [s.error for s in states],
                "error_kinds": [s.error_kind.value if s.error_kind else None for s in states],
                "due_ats": [s.due_at for s in states],
                "answered_ats": [answered_at for _, _, answered_at in taken],
                "unattempted": [isinstance(r, WindowClosed) for _, r, _ in taken],
            },
        )


__all__ = [
    "DATABASE_UNREACHABLE",
    "DEADLINE_PASSED",
    "END_MARGIN_S",
    "BatchReport",
    "ClaimedMessage",
    "Delivery",
    "FollowUp",
    "NextState",
    "last_request_start",
    "next_state",
    "retry_delay_s",
]
