"""Delivery of one batch of messages: claim, send with bounded concurrency, record, follow up.

A batch is safe to run twice, even at once: a claim leases each message for a while and only
pending, due, unleased messages can be claimed; recording ``sent`` only ever moves a message
there once. Whatever a run leaves pending gets a follow-up job at its next due time, in the
same transaction that records the results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings
from notification.mailings.send_window import (
    WINDOW_NEVER_OPENS,
    is_open,
    next_opening,
    openings_by_zone,
    wait_for_opening_sql,
)
from notification.messages.models import MessageStatus
from notification.provider import metrics as provider_metrics
from notification.provider.client import Outcome, ProviderClient, SendResult

logger = structlog.get_logger(__name__)

FollowUp = Callable[[AsyncConnection, int, int, list[int], dt.datetime], Awaitable[None]]
"""Defers ``send_messages(mailing_id, plan_version, message_ids)`` at a time, on a connection."""


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


@dataclass(slots=True)
class BatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    expired: int = 0
    follow_up_at: dt.datetime | None = None
    skipped: str | None = None
    results: dict[int, SendResult] = field(default_factory=dict)

    def count(self, status: str) -> None:
        if status == MessageStatus.SENT:
            self.sent += 1
        elif status == MessageStatus.FAILED:
            self.failed += 1
        elif status == MessageStatus.EXPIRED:
            self.expired += 1
        else:
            self.retrying += 1


_MAILING = """
SELECT text, start_at, end_at, plan_version, send_window_start, send_window_end, now() AS now
FROM mailings WHERE id = %(mailing_id)s
"""

# A message of the batch that a claim may take: pending, due, and not leased by a live twin run.
_DUE_IN_BATCH = (
    "m.id = ANY(%(ids)s) AND m.mailing_id = %(mailing_id)s AND m.status = 'pending'"
    " AND m.due_at <= now() AND (m.leased_until IS NULL OR m.leased_until <= now())"
)

# The client's wall time is inside the window, [start, end) or, when end < start, wrapping past
# midnight: the rule of send_window.is_open, evaluated by the database for every row at once.
_WINDOW_OPEN = """CASE WHEN %(window_start)s::time < %(window_end)s::time
    THEN wall.t >= %(window_start)s::time AND wall.t < %(window_end)s::time
    ELSE wall.t >= %(window_start)s::time OR wall.t < %(window_end)s::time
END"""

_WALL_TIME = "CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE c.timezone)::time AS t) wall"

# SKIP LOCKED: a twin run of the same batch moves on instead of queueing behind this one.
_CLAIM_TEMPLATE = """
WITH claimable AS (
    SELECT m.id FROM messages m JOIN clients c ON c.id = m.client_id {wall}
    WHERE {due} AND {window}
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET leased_until = now() + make_interval(secs => %(lease_s)s), attempts = m.attempts + 1
FROM claimable, clients c
WHERE m.id = claimable.id AND c.id = m.client_id
RETURNING m.id, m.client_id, c.phone, m.attempts, c.timezone
"""
_CLAIM = sql.SQL(_CLAIM_TEMPLATE).format(wall=sql.SQL(""), due=sql.SQL(_DUE_IN_BATCH), window=sql.SQL("TRUE"))
# A windowed mailing claims only the messages whose client's window is open right now.
_CLAIM_IN_WINDOW = sql.SQL(_CLAIM_TEMPLATE).format(
    wall=sql.SQL(_WALL_TIME), due=sql.SQL(_DUE_IN_BATCH), window=sql.SQL(_WINDOW_OPEN)
)

# The zones of the batch's due messages left waiting by the window (same transaction, same now()).
_CLOSED_ZONES = sql.SQL(
    "SELECT DISTINCT c.timezone FROM messages m JOIN clients c ON c.id = m.client_id {wall}"
    " WHERE {due} AND NOT ({window})"
).format(wall=sql.SQL(_WALL_TIME), due=sql.SQL(_DUE_IN_BATCH), window=sql.SQL(_WINDOW_OPEN))

# Each of them is due at its zone's next opening, or expires when that is at or after end_at.
_WAIT_FOR_WINDOW = wait_for_opening_sql(_DUE_IN_BATCH)

# Every statement that writes several messages locks them in id order first, as the deletion of
# a mailing or a client does: two writers taking rows in different orders deadlock.

# 'sent' wins over a cancellation or expiry that landed while the request was in flight: the
# provider did accept it. Every other outcome only applies to a message still pending.
_RECORD = """
WITH locked AS (SELECT id FROM messages WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE)
UPDATE messages m
SET status = r.status,
    sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE m.sent_at END,
    last_error = CASE WHEN r.unattempted AND r.error IS NULL THEN m.last_error ELSE r.error END,
    due_at = coalesce(r.due_at, m.due_at),
    attempts = CASE WHEN r.unattempted THEN greatest(m.attempts - 1, 0) ELSE m.attempts END,
    leased_until = NULL
FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(errors)s::text[], %(due_ats)s::timestamptz[],
            %(unattempted)s::boolean[])
     AS r(id, status, error, due_at, unattempted), locked
WHERE m.id = r.id AND locked.id = r.id AND (m.status = 'pending' OR (r.status = 'sent' AND m.status <> 'sent'))
"""

_REMAINING = """
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS ids,
       min(greatest(due_at, coalesce(leased_until, due_at))) AS next_at
FROM messages
WHERE id = ANY(%(ids)s) AND status = 'pending'
"""

_EXPIRE = """
WITH locked AS (
    SELECT id FROM messages WHERE id = ANY(%(ids)s) AND status = 'pending' ORDER BY id FOR UPDATE
)
UPDATE messages m
SET status = 'expired', leased_until = NULL, last_error = coalesce(%(reason)s, m.last_error)
FROM locked WHERE m.id = locked.id AND m.status = 'pending'
"""


def retry_delay_s(settings: Settings, attempts: int, retry_after_s: float | None) -> float:
    """Capped exponential backoff with jitter; the provider's Retry-After wins when it asks for longer."""
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2 ** max(0, attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not cryptography)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


class Delivery:
    """Sends batches for a worker process: one provider client and a fixed set of sender tasks,
    ``provider_concurrency`` of them, shared by every batch the worker runs."""

    def __init__(self, settings: Settings, provider: ProviderClient) -> None:
        self.settings = settings
        self.provider = provider
        self._queue: asyncio.Queue[_Send] = asyncio.Queue()
        self._senders: list[asyncio.Task[None]] = []

    async def send_batch(
        self,
        pool: AsyncConnectionPool,
        mailing_id: int,
        plan_version: int,
        message_ids: Sequence[int],
        follow_up: FollowUp,
    ) -> BatchReport:
        report = BatchReport()
        ids = list(message_ids)
        # One connection for the whole batch: taking one from the pool per write cost more
        # than the write itself.
        async with pool.connection() as conn:
            claim = await self._claim(conn, mailing_id, plan_version, ids, report)
            if claim is None:
                return report
            text, end_at, window, claimed = claim
            report.claimed = len(claimed)
            log = logger.bind(mailing_id=mailing_id)
            batch = _Batch(self, conn, text, end_at, window, len(claimed), report, log)
            self._start_senders()
            for message in claimed:
                self._queue.put_nowait(_Send(batch, message))
            await batch.written_all()
            async with conn.transaction():
                await self._follow_up(conn, mailing_id, plan_version, ids, end_at, follow_up, report)
        return report

    def _start_senders(self) -> None:
        # Long-lived tasks pulling from one queue: no task per message, and the provider never
        # sees more than provider_concurrency requests from this process.
        if not self._senders:
            self._senders = [
                asyncio.create_task(self._sender(), name=f"provider-sender-{i}")
                for i in range(self.settings.provider_concurrency)
            ]

    async def _sender(self) -> None:
        while True:
            send = await self._queue.get()
            try:
                batch = send.batch
                result = await self._send_one(send.message, batch.text, batch.end_at, batch.window, batch.log)
            except Exception as exc:  # noqa: BLE001  (a bug here must not kill the sender)
                result = SendResult(Outcome.TRANSIENT, f"unexpected error: {type(exc).__name__}")
            send.batch.answered(send.message, result)

    async def _claim(
        self, conn: AsyncConnection, mailing_id: int, plan_version: int, ids: list[int], report: BatchReport
    ) -> tuple[str, dt.datetime, Window | None, list[ClaimedMessage]] | None:
        cur = conn.cursor(row_factory=dict_row)
        mailing = await (await cur.execute(_MAILING, {"mailing_id": mailing_id})).fetchone()
        if mailing is None:
            report.skipped = "mailing deleted"
            return None
        if mailing["plan_version"] != plan_version:
            report.skipped = "plan superseded"
            return None
        if mailing["now"] >= mailing["end_at"]:
            async with conn.transaction():
                await cur.execute(_EXPIRE, {"ids": ids, "reason": "end_at passed before it could be sent"})
            report.expired = cur.rowcount
            report.skipped = "mailing ended"
            return None
        params = {"ids": ids, "mailing_id": mailing_id, "lease_s": self.settings.send_lease_s}
        window: Window | None = None
        if mailing["send_window_start"] is not None and mailing["send_window_end"] is not None:
            window = (mailing["send_window_start"], mailing["send_window_end"])
        async with conn.transaction():
            if window is None:
                rows = await (await cur.execute(_CLAIM, params)).fetchall()
            else:
                params |= {"window_start": window[0], "window_end": window[1]}
                rows = await (await cur.execute(_CLAIM_IN_WINDOW, params)).fetchall()
                await self._wait_for_window(cur, params, window, mailing["end_at"], report)
        claimed = [ClaimedMessage(r["id"], r["client_id"], r["phone"], r["attempts"], r["timezone"]) for r in rows]
        return mailing["text"], mailing["end_at"], window, claimed

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
        next opening, computed once per distinct zone; ``_follow_up`` then defers a job for it."""
        zone_rows = await (await cur.execute(_CLOSED_ZONES, params)).fetchall()
        if not zone_rows:
            return
        now = (await (await cur.execute("SELECT now() AS now")).fetchone() or {})["now"]
        zones, openings = openings_by_zone(window[0], window[1], (r["timezone"] for r in zone_rows), now)
        if not zones:
            return
        changed_params = params | {
            "zones": zones,
            "openings": openings,
            "end_at": end_at,
            "never_opens": WINDOW_NEVER_OPENS,
        }
        changed = await (await cur.execute(_WAIT_FOR_WINDOW, changed_params)).fetchall()
        report.expired += sum(1 for r in changed if r["status"] == MessageStatus.EXPIRED)

    async def _follow_up(
        self,
        conn: AsyncConnection,
        mailing_id: int,
        plan_version: int,
        ids: list[int],
        end_at: dt.datetime,
        follow_up: FollowUp,
        report: BatchReport,
    ) -> None:
        """Whatever is still pending in the batch gets a job at its next due time, or expires."""
        cur = conn.cursor(row_factory=dict_row)
        remaining = await (await cur.execute(_REMAINING, {"ids": ids})).fetchone()
        if remaining is None or not remaining["ids"]:
            return
        next_at: dt.datetime = remaining["next_at"]
        if next_at >= end_at:
            await cur.execute(_EXPIRE, {"ids": remaining["ids"], "reason": "no chance to send before end_at"})
            report.expired += cur.rowcount
            return
        await follow_up(conn, mailing_id, plan_version, remaining["ids"], next_at)
        report.follow_up_at = next_at

    def next_state(
        self, message: ClaimedMessage, result: SendResult, end_at: dt.datetime, now: dt.datetime
    ) -> tuple[str, str | None, dt.datetime | None]:
        if result.outcome is Outcome.SENT:
            return MessageStatus.SENT, None, None
        if result.outcome is Outcome.PERMANENT:
            return MessageStatus.FAILED, result.error, None
        retry_at = now + dt.timedelta(seconds=retry_delay_s(self.settings, message.attempts, result.retry_after_s))
        if retry_at >= end_at:
            return MessageStatus.EXPIRED, result.error, None
        return MessageStatus.PENDING, result.error, retry_at

    async def _send_one(
        self,
        message: ClaimedMessage,
        text: str,
        end_at: dt.datetime,
        window: Window | None,
        log: structlog.stdlib.BoundLogger,
    ) -> SendResult:
        # Checked again here: the wait in the queue may have run past the mailing's end.
        now = dt.datetime.now(dt.UTC)
        time_left_s = (end_at - now).total_seconds()
        if time_left_s <= 0:
            return SendResult(Outcome.TRANSIENT, "end_at passed before the request")
        # And the window too: it may have closed while the message waited in the queue.
        if window is not None and message.timezone is not None:
            tz = ZoneInfo(message.timezone)
            if not is_open(window[0], window[1], tz, now):
                opens_at = next_opening(window[0], window[1], tz, now)
                log.info("send window closed", message_id=message.id, opens_at=opens_at.isoformat())
                return WindowClosed(Outcome.TRANSIENT, opens_at=opens_at if opens_at < end_at else None)
        result = await self.provider.send(message.id, message.phone, text, time_left_s)
        provider_metrics.observe(result)
        log.info(
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
        text: str,
        end_at: dt.datetime,
        window: Window | None,
        expected: int,
        report: BatchReport,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        self.text = text
        self.window = window
        self._expected = expected
        self.end_at = end_at
        self.log = log
        self._delivery = delivery
        self._conn = conn
        self._report = report
        self._answers: list[tuple[ClaimedMessage, SendResult]] = []
        self._answered = 0
        self._wake = asyncio.Event()

    def answered(self, message: ClaimedMessage, result: SendResult) -> None:
        """Called by the senders; never waits, so a slow write never holds a request slot."""
        self._report.results[message.id] = result
        self._answers.append((message, result))
        self._answered += 1
        if len(self._answers) >= self._delivery.settings.result_flush_size or self._answered == self._expected:
            self._wake.set()

    async def written_all(self) -> None:
        while self._answered < self._expected:
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
        states = [
            _window_state(r) if isinstance(r, WindowClosed) else self._delivery.next_state(m, r, self.end_at, now)
            for m, r in taken
        ]
        for status, _, _ in states:
            self._report.count(status)
        await self._conn.execute(
            _RECORD,
            {
                "ids": [m.id for m, _ in taken],
                "statuses": [status for status, _, _ in states],
                "errors": [error for _, error, _ in states],
                "due_ats": [due_at for _, _, due_at in states],
                "unattempted": [isinstance(r, WindowClosed) for _, r in taken],
            },
        )


def _window_state(result: WindowClosed) -> tuple[str, str | None, dt.datetime | None]:
    """Not sent for a closed window: wait for the opening, or expire if none comes before end_at."""
    if result.opens_at is None:
        return MessageStatus.EXPIRED, WINDOW_NEVER_OPENS, None
    return MessageStatus.PENDING, None, result.opens_at
