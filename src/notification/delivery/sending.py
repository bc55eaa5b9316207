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

Each message goes to the provider its route chooses (``provider/routes.py``): the first of the
route's providers that takes messages now (its breaker not open, not held by a 429 or throttling);
a retry after a transient failure starts from the provider after the one that failed. The stored
providers and routes are read again whenever ``provider_config_version`` moves (once a second):
changed providers are built anew, and the ones they replace closed after their sends in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import psycopg
import structlog
from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery import claim as claims
from notification.delivery.batch import BatchReport, RunningBatch
from notification.delivery.breaker import CircuitBreaker
from notification.delivery.claim import ClaimedMessage, FollowUp, Skipped
from notification.delivery.senders import Lane, SenderPool
from notification.delivery.watcher import BatchWatcher
from notification.provider.registry import ProviderRegistry, RegisteredProvider, build_provider
from notification.provider.routes import Router, stored_router
from notification.provider.secrets import SecretBox
from notification.provider.store import StoredConfig, config_version, read_config
from notification.texts.templates import CompiledCache

logger = structlog.get_logger(__name__)

PROVIDER_CONFIG_POLL_S = 1.0
"""How often a worker reads ``provider_config_version``: a change reaches it within this (plus a read)."""
FIRST_CONFIG_WAIT_S = 5.0
"""How long the first batch waits for the stored providers before it goes to the settings' one."""


class Delivery:
    """Sends batches for a worker process: the providers of its registry, each behind a circuit
    breaker of its own and its shared rate budget; a fixed set of sender tasks
    (``provider_concurrency`` of them) shared by every batch the worker runs; and a watcher that
    renews the leases of running batches and stops the ones whose mailing changed. Opened and
    closed with the worker (``start``/``aclose``); it owns the registry and closes it."""

    def __init__(self, settings: Settings, providers: ProviderRegistry) -> None:
        self.settings = settings
        self.providers = providers
        self.lanes = {entry.name: _lane(entry) for entry in providers}
        """Each provider by name, behind its own breaker: one provider's outage never holds another's requests."""
        self._specs = {entry.name: entry.spec for entry in providers}
        self._default_lane = self.lanes[providers.default.name]
        self.router = Router([], self.lanes, providers.default.name)
        self._settings_lanes = dict(self.lanes)
        """The providers of the settings: the ones used while none is stored."""
        self._senders = SenderPool(settings.provider_concurrency)
        self._compiled = CompiledCache()
        """Personalised texts compiled once per mailing version, for every batch of this worker."""
        self._running: set[RunningBatch] = set()
        self._watcher = BatchWatcher(
            settings.psycopg_conninfo,
            settings.send_lease_s,
            lambda: self._running,
            lambda: [lane.budget for lane in self.lanes.values()],
        )
        self._box = SecretBox.from_settings(settings)
        self._version: int | None = None
        self._configured = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._senders.start()
        self._watcher.start()
        self._follower = asyncio.create_task(self._follow_config(), name="provider-config-follower")

    async def aclose(self) -> None:
        await self._senders.aclose()
        await self._watcher.aclose()
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        lanes = {id(lane): lane for lane in [*self.lanes.values(), *self._settings_lanes.values()]}
        for lane in lanes.values():
            await _close(lane)

    def route(self, message: ClaimedMessage) -> Lane | None:
        """The lane of this attempt: the first of its route's providers that takes messages now,
        starting after the provider of a failed previous attempt; the first of them if none does."""
        names = self.router.candidates(message.operator_code, message.phone)
        if not names:
            return None
        start = 0
        if message.attempts > 1 and message.last_provider in names:
            start = (names.index(message.last_provider) + 1) % len(names)
        order = names[start:] + names[:start]
        lanes = [self.lanes[name] for name in order if name in self.lanes]
        if not lanes:
            return None
        return next((lane for lane in lanes if lane.takes_now()), lanes[0])

    async def _follow_config(self) -> None:
        conn: AsyncConnection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await AsyncConnection.connect(self.settings.psycopg_conninfo, autocommit=True)
                    version = await config_version(conn)
                    if version != self._version:
                        await self._apply(await read_config(conn, self._box))
                except psycopg.Error as exc:
                    logger.warning("stored providers could not be read; the current ones stay", error=str(exc))
                    if conn is not None:
                        await conn.close()
                except Exception:
                    logger.exception("stored providers could not be applied; the current ones stay")
                finally:
                    self._configured.set()
                await asyncio.sleep(PROVIDER_CONFIG_POLL_S)
        finally:
            if conn is not None:
                await conn.close()

    async def _apply(self, config: StoredConfig) -> None:
        """Builds the providers whose spec changed, swaps them in, and retires the old ones."""
        if not config.providers:
            new_lanes = dict(self._settings_lanes)
            specs = {name: self._specs.get(name) for name in new_lanes}
        else:
            new_lanes = {}
            specs = {}
            for spec in config.providers:
                current = self.lanes.get(spec.name)
                if (
                    current is not None
                    and self._specs.get(spec.name) == spec
                    and current not in self._settings_lanes.values()
                ):
                    new_lanes[spec.name] = current
                else:
                    entry = build_provider(spec, self.settings)
                    await entry.provider.open()
                    new_lanes[spec.name] = _lane(entry)
                specs[spec.name] = spec
        enabled = [name for name, spec in specs.items() if spec is None or spec.enabled]
        retired = [
            lane
            for lane in self.lanes.values()
            if lane not in new_lanes.values() and lane not in self._settings_lanes.values()
        ]
        self.lanes = new_lanes
        self._specs = {name: spec for name, spec in specs.items() if spec is not None}
        self.router = stored_router(
            [(spec.name, spec.enabled) for spec in config.providers], config.rules, self.providers.default.name
        )
        self._version = config.version
        for lane in retired:
            task = asyncio.create_task(_close_after_sends(lane))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        logger.info(
            "providers read",
            providers=sorted(new_lanes),
            enabled=sorted(enabled),
            routes=len(config.rules),
            version=config.version,
        )

    async def send_batch(
        self, conn: AsyncConnection, mailing_id: int, plan_version: int, message_ids: Sequence[int]
    ) -> BatchReport:
        """Claims what is due among ``message_ids`` and sends it; ``conn`` is the batch's own
        connection (taking one from the pool per write cost more than the write itself)."""
        if not self._senders.started:
            msg = "Delivery.start() was not called: the worker opens it"
            raise RuntimeError(msg)
        if not self._configured.is_set():
            try:
                await asyncio.wait_for(self._configured.wait(), FIRST_CONFIG_WAIT_S)
            except TimeoutError:
                logger.warning("stored providers not read yet: this batch goes to the settings' provider")
        report = BatchReport()
        claim = await claims.claim_batch(conn, mailing_id, plan_version, list(message_ids), self.settings.send_lease_s)
        if isinstance(claim, Skipped):
            report.skipped, report.expired = claim.reason, claim.expired
            return report
        report.claimed, report.end_at, report.expired = len(claim.messages), claim.end_at, claim.expired
        batch = RunningBatch(
            self.settings,
            conn,
            mailing_id,
            plan_version,
            claim,
            self._default_lane,
            report,
            route=self.route,
            compiled=self._compiled,
        )
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


def _lane(entry: RegisteredProvider) -> Lane:
    return Lane(entry.name, entry.provider, CircuitBreaker(capacity=entry.spec.concurrency), entry.budget)


async def _close(lane: Lane) -> None:
    for close in (lane.budget.aclose, lane.provider.aclose):
        try:
            await close()
        except Exception:  # noqa: BLE001  (the others still close)
            logger.warning("provider did not close cleanly", provider=lane.name)


async def _close_after_sends(lane: Lane) -> None:
    """A replaced provider answers the sends it has in flight, then closes."""
    while lane.in_flight:  # noqa: ASYNC110  (a counter on the hot path is cheaper than an event per send)
        await asyncio.sleep(0.05)
    await _close(lane)
