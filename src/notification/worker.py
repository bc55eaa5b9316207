"""The procrastinate app of the worker: ``procrastinate --app=notification.worker.app worker``.

Importing it builds nothing that talks to the outside: the providers, the sender tasks and
the metrics server exist only while a worker runs (``run_worker_async``), and are closed when it
stops. A worker that loses its database (the listener's connection breaks, procrastinate stops
the worker) waits for it, reopens its pool and runs again; only a signal ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from typing import Any

import psycopg
import structlog
from procrastinate import App, PsycopgConnector

from notification.config import Settings, get_settings
from notification.delivery.sending import Delivery
from notification.delivery.tasks import blueprint as delivery_tasks
from notification.idempotency.tasks import blueprint as idempotency_tasks
from notification.inbound.tasks import blueprint as inbound_tasks
from notification.jobs import (
    DELIVERY_NAMESPACE,
    IDEMPOTENCY_NAMESPACE,
    INBOUND_NAMESPACE,
    RECEIPTS_NAMESPACE,
    REPORTS_NAMESPACE,
    SCHEDULES_NAMESPACE,
    STATS_NAMESPACE,
    WEBHOOKS_NAMESPACE,
    create_connector,
)
from notification.logging import configure_logging
from notification.provider.metrics import serve_worker_metrics
from notification.provider.registry import ProviderRegistry
from notification.receipts.tasks import blueprint as receipt_tasks
from notification.reports.tasks import daily_report_tasks
from notification.schedules.tasks import blueprint as schedule_tasks
from notification.stats.tasks import blueprint as stats_tasks
from notification.webhooks.tasks import blueprint as webhook_tasks

logger = structlog.get_logger(__name__)

RECONNECT_MAX_WAIT_S = 5.0


def worker_options(settings: Settings) -> dict[str, Any]:
    """What a worker of this service runs with."""
    return {
        "concurrency": settings.worker_concurrency,
        "delete_jobs": "successful",
        "update_heartbeat_interval": settings.worker_heartbeat_s,
        # New jobs arrive by LISTEN/NOTIFY; polling is what wakes jobs scheduled for later (retries).
        "fetch_job_polling_interval": settings.worker_poll_s,
    }


class WorkerApp(App):
    """procrastinate's App, with the delivery machinery opened around each worker run."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    async def run_worker_async(self, **kwargs: Any) -> None:
        settings = self.settings
        connector = self.connector
        if not isinstance(connector, PsycopgConnector):
            msg = "the worker needs procrastinate's PsycopgConnector"
            raise TypeError(msg)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        run: asyncio.Task[None] | None = None

        def request_stop() -> None:
            stopping.set()
            if run is not None:
                run.cancel()  # procrastinate's worker turns this into a graceful stop

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, request_stop)
        metrics_server = serve_worker_metrics(settings.worker_metrics_port)
        providers = ProviderRegistry.from_settings(settings)
        await providers.open()
        delivery = Delivery(settings, providers)
        delivery.start()
        # Long-running jobs (the webhook dispatcher) end their run when the worker is asked to stop,
        # rather than hold its graceful stop for as long as they would have gone on.
        context = {"settings": settings, "delivery": delivery, "stopping": stopping}
        try:
            while not stopping.is_set():
                run = asyncio.create_task(
                    super().run_worker_async(**kwargs, additional_context=context, install_signal_handlers=False)
                )
                try:
                    await run
                except asyncio.CancelledError:
                    if not stopping.is_set():
                        raise
                if not stopping.is_set():
                    logger.error("worker stopped by itself (database connection lost?); reconnecting")
                    await self._reopen(connector, stopping)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await delivery.aclose()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            logger.info("worker stopped")

    async def _reopen(self, connector: PsycopgConnector, stopping: asyncio.Event) -> None:
        """A fresh pool once the database answers again: the old one holds dead connections."""
        await connector.close_async()
        wait_s = 0.2
        while not stopping.is_set():
            try:
                probe = await psycopg.AsyncConnection.connect(self.settings.psycopg_conninfo, connect_timeout=2)
                await probe.close()
                await connector.open_async()
            except Exception as exc:  # noqa: BLE001  (whatever the outage looks like, try again)
                logger.warning("database unreachable, retrying", error=type(exc).__name__, retry_in_s=wait_s)
                await connector.close_async()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), wait_s)
                wait_s = min(RECONNECT_MAX_WAIT_S, wait_s * 2)
            else:
                logger.warning("database reachable again, worker restarting")
                return


def _relax_garbage_collection() -> None:
    """Every send allocates tasks, requests and rows that die young; with CPython's default
    thresholds the collector ran often enough to cost a fifth of the worker's throughput."""
    gc.freeze()  # what the imports built lives as long as the process: never scan it again
    gc.set_threshold(100_000, 50, 100)


def _create_app(settings: Settings) -> WorkerApp:
    configure_logging(settings)
    job_queue = WorkerApp(
        settings,
        connector=create_connector(settings, max_size=settings.worker_concurrency + 4),
        worker_defaults=worker_options(settings),
    )
    job_queue.add_tasks_from(delivery_tasks, namespace=DELIVERY_NAMESPACE)
    job_queue.add_tasks_from(daily_report_tasks(settings), namespace=REPORTS_NAMESPACE)
    job_queue.add_tasks_from(stats_tasks, namespace=STATS_NAMESPACE)
    job_queue.add_tasks_from(idempotency_tasks, namespace=IDEMPOTENCY_NAMESPACE)
    job_queue.add_tasks_from(schedule_tasks, namespace=SCHEDULES_NAMESPACE)
    job_queue.add_tasks_from(webhook_tasks, namespace=WEBHOOKS_NAMESPACE)
    job_queue.add_tasks_from(inbound_tasks, namespace=INBOUND_NAMESPACE)
    job_queue.add_tasks_from(receipt_tasks, namespace=RECEIPTS_NAMESPACE)
    return job_queue


_relax_garbage_collection()
app = _create_app(get_settings())
