"""Posting the outbox's events to their endpoints, signed per the Standard Webhooks specification.

One run claims due rows (``queries.sql``: ``claim``), posts each with its own timeout, writes the
outcomes of the requests that finished together in two statements, and claims again as room frees,
until nothing is due and nothing is in flight, or its time is up. The dispatcher runs as a job of
its own queue, one at a time among all workers (a procrastinate lock): requests to a slow endpoint
hold its connections, never the senders'.

At least once: a row is marked delivered only after a 2xx answer; a run that dies leaves its rows
leased, due again once the lease has run out, so a receiver may see an event twice (same
``webhook-id``). In order per subject: a row is claimed only once every earlier row of its
subject for that endpoint is delivered."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from standardwebhooks import Webhook

from notification.config import Settings
from notification.provider.secrets import SecretBox, SecretsUnavailable
from notification.webhooks.queries import queries
from notification.webhooks.service import webhook_id

logger = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 200
"""Requests in flight in one run, over every endpoint together."""
CLAIM_EVERY_S = 0.2
"""While requests are in flight, how often the run looks for newly due events."""
GATHER_S = 0.005
WAIT_FOR_RETRY_S = 1.0
"""With nothing to post, a run waits for a retry due within this long rather than end: the next run
would start no sooner (the job is due every second). A later retry is the next runs' to make."""
LEASE_MARGIN_S = 5.0
"""A claimed row's lease lasts the request's timeout and this: the run writes its outcome first."""
ERROR_TEXT_MAX = 300
USER_AGENT = "notification-webhooks"
DISABLED_BY = "webhook dispatcher"


@dataclass(slots=True, frozen=True)
class Claimed:
    id: int
    endpoint_id: int
    url: str
    sealed_secret: str
    event_type: str
    subject: str
    body: str


@dataclass(slots=True, frozen=True)
class Outcome:
    id: int
    endpoint_id: int
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    disabled: list[int] = field(default_factory=list)


def signed_headers(secret: Webhook, message_id: str, body: str, at: dt.datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": secret.sign(message_id, at, body),
    }


class Dispatcher:
    def __init__(self, settings: Settings, pool: AsyncConnectionPool) -> None:
        self.settings = settings
        self.pool = pool
        self.box = SecretBox.from_settings(settings)
        self._signers: dict[str, Webhook] = {}

    def _signer(self, sealed: str) -> Webhook:
        signer = self._signers.get(sealed)
        if signer is None:
            signer = self._signers[sealed] = Webhook(self.box.open(sealed))
        return signer

    async def run(self, budget_s: float, stopping: asyncio.Event | None = None) -> DispatchReport:
        """Posts what is due until nothing is, the budget is spent, or ``stopping`` is set; requests
        still in flight then are cancelled and their rows given back at once."""
        report = DispatchReport()
        deadline = time.monotonic() + budget_s
        in_flight: dict[asyncio.Task[Outcome], Claimed] = {}
        busy: Counter[int] = Counter()
        stop = asyncio.create_task((stopping or asyncio.Event()).wait())
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT, limit_per_host=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            try:
                while not stop.done():
                    room = MAX_IN_FLIGHT - len(in_flight)
                    if room > 0 and time.monotonic() < deadline:
                        for row in await self._claim(busy, room):
                            in_flight[asyncio.create_task(self._post(http, row))] = row
                            busy[row.endpoint_id] += 1
                    if not in_flight:
                        wait_s = await self._next_due_s()
                        if wait_s is None or wait_s > WAIT_FOR_RETRY_S or time.monotonic() + wait_s > deadline:
                            break
                        await asyncio.wait([stop], timeout=wait_s)
                        continue
                    waiting: set[asyncio.Task[Any]] = {*in_flight, stop}
                    done, _ = await asyncio.wait(waiting, timeout=CLAIM_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
                    pending = {task for task in in_flight if task not in done}
                    if pending and not stop.done() and done:
                        # A few milliseconds more gather the answers arriving together into one write.
                        more, _ = await asyncio.wait(pending, timeout=GATHER_S)
                        done |= more
                    finished = [task for task in in_flight if task in done]
                    for task in finished:
                        busy[in_flight.pop(task).endpoint_id] -= 1
                    if finished:
                        await self._record([task.result() for task in finished], report)
            finally:
                stop.cancel()
                for task in in_flight:
                    task.cancel()
                if in_flight:
                    await self._release([row.id for row in in_flight.values()])
        return report

    async def _release(self, ids: list[int]) -> None:
        """Rows whose request was cut short: due again now, not when their lease would have run out."""
        async with self.pool.connection() as conn:
            await conn.execute(queries["release"], {"ids": ids})

    async def _claim(self, busy: Counter[int], limit: int) -> list[Claimed]:
        endpoints = [endpoint for endpoint, count in busy.items() if count > 0]
        params = {
            "per_endpoint": self.settings.webhook_concurrency,
            "busy_endpoints": endpoints,
            "busy_counts": [busy[endpoint] for endpoint in endpoints],
            "limit": limit,
            "lease_s": self.settings.webhook_timeout_s + LEASE_MARGIN_S,
        }
        async with self.pool.connection() as conn:
            rows = await (await conn.cursor(row_factory=dict_row).execute(queries["claim"], params)).fetchall()
        return [
            Claimed(
                id=r["id"],
                endpoint_id=r["endpoint_id"],
                url=r["url"],
                sealed_secret=r["secret"],
                event_type=r["event_type"],
                subject=r["subject"],
                body=r["body"],
            )
            for r in rows
        ]

    async def _next_due_s(self) -> float | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(queries["next_due_s"])).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def _post(self, http: aiohttp.ClientSession, row: Claimed) -> Outcome:
        try:
            signer = self._signer(row.sealed_secret)
        except SecretsUnavailable as exc:
            return Outcome(row.id, row.endpoint_id, None, f"the signing secret cannot be read: {exc}")
        headers = signed_headers(signer, webhook_id(row.id), row.body, dt.datetime.now(dt.UTC))
        try:
            async with http.post(row.url, data=row.body.encode(), headers=headers, allow_redirects=False) as answer:
                if 200 <= answer.status < 300:
                    return Outcome(row.id, row.endpoint_id, answer.status, None)
                text = (await answer.content.read(ERROR_TEXT_MAX)).decode(errors="replace")
                return Outcome(row.id, row.endpoint_id, answer.status, f"HTTP {answer.status}: {text}".strip())
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Outcome(row.id, row.endpoint_id, None, error[:ERROR_TEXT_MAX])

    async def _record(self, outcomes: list[Outcome], report: DispatchReport) -> None:
        delivered = [o for o in outcomes if o.delivered]
        failed = [o for o in outcomes if not o.delivered]
        backoff = {"base_s": self.settings.webhook_retry_base_s, "max_s": self.settings.webhook_retry_max_s}
        async with self.pool.connection() as conn, conn.transaction():
            # Failures first: a success in the same round says the endpoint is alive, and wins.
            if failed:
                await conn.execute(
                    queries["record_failed"],
                    {
                        "ids": [o.id for o in failed],
                        "statuses": [o.status for o in failed],
                        # A receiver's answer may hold a NUL, which no PostgreSQL text can.
                        "errors": [(o.error or "").replace("\x00", "") for o in failed],
                        **backoff,
                    },
                )
            if delivered:
                await conn.execute(
                    queries["record_delivered"],
                    {"ids": [o.id for o in delivered], "statuses": [o.status for o in delivered]},
                )
            newly_disabled: list[int] = []
        if failed:
            disabled = await (
                await conn.execute(
                    queries["disable_failing"],
                    {"after_s": self.settings.webhook_disable_after_s, "actor": DISABLED_BY},
                )
            ).fetchall()
            newly_disabled = [row[0] for row in disabled]
        for outcome in failed:
            logger.warning(
                "webhook request failed",
                webhook_endpoint_id=outcome.endpoint_id,
                webhook_outbox_id=outcome.id,
                status=outcome.status,
                error=outcome.error,
            )
        for endpoint_id in newly_disabled:
            logger.error("webhook endpoint disabled: failing for too long", webhook_endpoint_id=endpoint_id)
        report.disabled += newly_disabled
        report.delivered += len(delivered)
        report.failed += len(failed)


async def prune(pool: AsyncConnectionPool, retention_s: float, batch: int = 10_000) -> int:
    """Deletes events past their retention, a batch per statement so no lock is held for long."""
    removed = 0
    async with pool.connection() as conn:
        while True:
            deleted = (await conn.execute(queries["prune"], {"retention_s": retention_s, "limit": batch})).rowcount
            removed += deleted
            if deleted < batch:
                return removed
