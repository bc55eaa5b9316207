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

The roles live apart: the send rules in ``policy``, the claim and the follow-up in ``claim``, the
sender tasks in ``senders``, the watcher in ``watcher``, a batch in flight and the writer of its
answers in ``batch``. :class:`Delivery` composes them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery import claim as claims
from notification.delivery.batch import BatchReport, RunningBatch
from notification.delivery.breaker import CircuitBreaker
from notification.delivery.claim import FollowUp, Skipped
from notification.delivery.senders import Lane, SenderPool
from notification.delivery.watcher import BatchWatcher
from notification.provider.registry import ProviderRegistry


class Delivery:
    """Sends batches for a worker process: the providers of its registry, each behind a circuit
    breaker of its own and its shared rate budget; a fixed set of sender tasks
    (``provider_concurrency`` of them) shared by every batch the worker runs; and a watcher that
    renews the leases of running batches and stops the ones whose mailing changed. Opened and
    closed with the worker (``start``/``aclose``); it owns the registry and closes it."""

    def __init__(self, settings: Settings, providers: ProviderRegistry) -> None:
        self.settings = settings
        self.providers = providers
        self.lanes = {
            entry.name: Lane(entry.name, entry.provider, CircuitBreaker(capacity=entry.spec.concurrency), entry.budget)
            for entry in providers
        }
        """Each provider by name, behind its own breaker: one provider's outage never holds another's requests."""
        self._default_lane = self.lanes[providers.default.name]
        self._senders = SenderPool(settings.provider_concurrency)
        self._running: set[RunningBatch] = set()
        self._watcher = BatchWatcher(
            settings.psycopg_conninfo, settings.send_lease_s, lambda: self._running, (e.budget for e in providers)
        )

    def start(self) -> None:
        self._senders.start()
        self._watcher.start()

    async def aclose(self) -> None:
        await self._senders.aclose()
        await self._watcher.aclose()
        await self.providers.aclose()

    async def send_batch(
        self, conn: AsyncConnection, mailing_id: int, plan_version: int, message_ids: Sequence[int]
    ) -> BatchReport:
        """Claims what is due among ``message_ids`` and sends it; ``conn`` is the batch's own
        connection (taking one from the pool per write cost more than the write itself)."""
        if not self._senders.started:
            msg = "Delivery.start() was not called: the worker opens it"
            raise RuntimeError(msg)
        report = BatchReport()
        claim = await claims.claim_batch(conn, mailing_id, plan_version, list(message_ids), self.settings.send_lease_s)
        if isinstance(claim, Skipped):
            report.skipped, report.expired = claim.reason, claim.expired
            return report
        report.claimed, report.end_at, report.expired = len(claim.messages), claim.end_at, claim.expired
        # One provider today; routing by the messages' operator codes chooses among the lanes.
        batch = RunningBatch(self.settings, conn, mailing_id, plan_version, claim, self._default_lane, report)
        self._running.add(batch)
        try:
            for message in claim.messages:
                self._senders.put(batch, message)
            await batch.written_all()
        except BaseException:
            batch.stop("its results could not be written")
            raise
        finally:
            self._running.discard(batch)
        if batch.unsent:
            await claims.give_back_unsent(conn, batch.unsent)
            report.unsent = len(batch.unsent)
        report.stopped = batch.stopped
        return report

    async def follow_up(self, conn: AsyncConnection, ids: list[int], end_at: dt.datetime) -> FollowUp | None:
        """See :func:`notification.delivery.claim.follow_up`."""
        return await claims.follow_up(conn, ids, end_at)
