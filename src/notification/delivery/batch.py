"""One batch in flight, and the writer of its answers.

The senders hand each answer to the batch without waiting; the batch writes them a few at a time
(``result_flush_size``), so that a worker dying mid-batch re-sends at most what was in flight or
not yet written, never the whole batch, and a slow write never holds a request slot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery.claim import Claim, ClaimedMessage, stored_cost
from notification.delivery.policy import WindowClosed, next_state
from notification.delivery.queries import queries
from notification.delivery.senders import Lane
from notification.mailings.sms import SmsText, measure
from notification.messages.models import MessageStatus
from notification.provider.base import SendResult
from notification.suppressions.models import SuppressionReason
from notification.suppressions.schemas import SuppressionCreate
from notification.suppressions.service import means_no_such_number, suppress_with_cursor
from notification.texts.templates import CompiledCache

logger = structlog.get_logger(__name__)

TEXT_NOW_PERSONALISED = "its text became personalised after the claim"
"""A stop whose messages a follow-up claims again, this time with the attributes the text names."""


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


class RunningBatch:
    """One batch in flight: what the senders need of it, what the watcher tells it, and its
    answers until they are written."""

    def __init__(
        self,
        settings: Settings,
        conn: AsyncConnection,
        mailing_id: int,
        plan_version: int,
        claim: Claim,
        lane: Lane,
        report: BatchReport,
        route: Callable[[ClaimedMessage], Lane | None] | None = None,
        compiled: CompiledCache | None = None,
    ) -> None:
        self.mailing_id = mailing_id
        self.plan_version = plan_version
        self._compiled = compiled if compiled is not None else CompiledCache(size=1)
        """The worker's compiled texts, shared by its batches: compiled once per mailing version."""
        self.text = claim.text
        self.sms = claim.sms
        """The cost of a plain text, the same for every message."""
        self.template = self._compiled.get(mailing_id, plan_version, claim.text)
        self._with_attributes = claim.with_attributes
        self.end_at = claim.end_at
        self.window = claim.window
        self.lane = lane
        """The provider its messages go to when no route chooses (``route`` unset)."""
        self._route = route
        self.log = logger.bind(mailing_id=mailing_id)
        self.stopped: str | None = None
        self.unsent: list[int] = []
        self.withdrawn: set[int] = set()
        """Claimed messages settled since, elsewhere (their client was deleted): never to be sent."""
        self._settings = settings
        self._conn = conn
        self._report = report
        self._no_such_number: list[tuple[str, str]] = []
        """(phone, provider) of permanent answers that the number does not exist, not yet suppressed."""
        self._pending_ids = {m.id for m in claim.messages}
        self._answers: list[tuple[ClaimedMessage, SendResult, dt.datetime, str | None]] = []
        self._costs: dict[int, SmsText] = {}
        """What the text of each request made cost, until its answer is written."""
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
            self.text, self.sms = mailing["text"], stored_cost(mailing)
            self.template = self._compiled.get(self.mailing_id, self.plan_version, self.text)
            if self.template.personalised and not self._with_attributes:
                self.stop(TEXT_NOW_PERSONALISED)

    def text_for(self, message: ClaimedMessage) -> tuple[str, SmsText]:
        """The text this message carries and what it costs: a plain text as stored, a personalised
        one rendered from the client as claimed and measured (a few microseconds each)."""
        template = self.template
        if not template.personalised:
            return template.text, self.sms
        text = template.render(message.recipient())
        return text, measure(text)

    def lane_for(self, message: ClaimedMessage) -> Lane | None:
        """The provider this attempt goes to (None: no enabled provider routes it)."""
        return self.lane if self._route is None else self._route(message)

    def answered(
        self, message: ClaimedMessage, result: SendResult, provider: str | None, sms: SmsText | None = None
    ) -> None:
        """Called by the senders, with the cost of the text the request carried (None when no
        request was made); never waits, so a slow write never holds a request slot."""
        self._report.results[message.id] = result
        if sms is not None:
            self._costs[message.id] = sms
        self._answers.append((message, result, dt.datetime.now(dt.UTC), provider))
        self._pending_ids.discard(message.id)
        if len(self._answers) >= self._settings.result_flush_size or not self._pending_ids:
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
            await self._suppress_no_such_numbers()
        # Answers that arrived during the last write.
        async with self._conn.transaction():
            await self._write()
        await self._suppress_no_such_numbers()

    async def _suppress_no_such_numbers(self) -> None:
        """In a transaction of its own, after the answers': suppressing cancels the numbers' pending
        messages of other mailings, rows no lock of this batch's write should wait for."""
        if not self._no_such_number:
            return
        found, self._no_such_number = self._no_such_number, []
        async with self._conn.transaction():
            for provider in sorted({p for _, p in found}):
                rows = [
                    SuppressionCreate(phone, SuppressionReason.INVALID_NUMBER, f"answer of {provider}"[:200])
                    for phone in sorted({ph for ph, p in found if p == provider})
                ]
                await suppress_with_cursor(self._conn.cursor(), rows, f"provider:{provider}"[:320])

    async def _write(self) -> None:
        taken, self._answers = self._answers, []
        if not taken:
            return
        now = dt.datetime.now(dt.UTC)
        settings = self._settings
        states = [next_state(settings, m, r, self.end_at, now) for m, r, _, _ in taken]
        costs = [self._costs.pop(m.id, None) for m, _, _, _ in taken]
        for state in states:
            self._report.count(state.status)
        if settings.suppress_invalid_numbers:
            self._no_such_number += [
                (m.phone, provider)
                for (m, r, _, provider), state in zip(taken, states, strict=True)
                if provider is not None and state.status is MessageStatus.FAILED and means_no_such_number(r)
            ]
        await self._conn.execute(
            queries["record_answers"],
            {
                "ids": [m.id for m, _, _, _ in taken],
                "statuses": [s.status.value for s in states],
                "errors": [s.error for s in states],
                "error_kinds": [s.error_kind.value if s.error_kind else None for s in states],
                "due_ats": [s.due_at for s in states],
                "answered_ats": [answered_at for _, _, answered_at, _ in taken],
                "unattempted": [isinstance(r, WindowClosed) or provider is None for _, r, _, provider in taken],
                "providers": [provider for _, _, _, provider in taken],
                "provider_message_ids": [r.provider_message_id for _, r, _, _ in taken],
                "encodings": [c.encoding.value if c else None for c in costs],
                "parts": [c.parts if c else None for c in costs],
            },
        )
