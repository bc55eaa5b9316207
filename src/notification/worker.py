"""The procrastinate app of the worker: ``procrastinate --app=notification.worker.app worker``.

Its connector and the delivery machinery come from the ``NOTIFICATION_*`` settings of the process.
"""

from __future__ import annotations

import gc
from typing import Any

from procrastinate import App

from notification.config import Settings, get_settings
from notification.jobs import create_connector
from notification.logging import configure_logging
from notification.mailings.tasks import blueprint as mailing_tasks
from notification.messages.delivery import Delivery
from notification.messages.tasks import blueprint as message_tasks
from notification.provider.client import ProviderClient
from notification.provider.metrics import serve_worker_metrics
from notification.reports.tasks import daily_report_tasks


def worker_options(settings: Settings) -> dict[str, Any]:
    """What a worker of this service runs with; settings and the delivery machinery ride in the job context."""
    return {
        "concurrency": settings.worker_concurrency,
        "delete_jobs": "successful",
        "update_heartbeat_interval": settings.worker_heartbeat_s,
        # New jobs arrive by LISTEN/NOTIFY; polling is what wakes jobs scheduled for later (retries).
        "fetch_job_polling_interval": settings.worker_poll_s,
        "additional_context": {"settings": settings, "delivery": Delivery(settings, ProviderClient(settings))},
    }


def _relax_garbage_collection() -> None:
    """Every send allocates tasks, requests and rows that die young; with CPython's default
    thresholds the collector ran often enough to cost a fifth of the worker's throughput."""
    gc.freeze()  # what the imports built lives as long as the process: never scan it again
    gc.set_threshold(100_000, 50, 100)


def _create_app(settings: Settings) -> App:
    configure_logging(settings)
    job_queue = App(
        connector=create_connector(settings, max_size=settings.worker_concurrency + 4),
        worker_defaults=worker_options(settings),  # type: ignore[arg-type]
    )
    job_queue.add_tasks_from(mailing_tasks, namespace="mailings")
    job_queue.add_tasks_from(message_tasks, namespace="messages")
    job_queue.add_tasks_from(daily_report_tasks(settings), namespace="reports")
    return job_queue


_relax_garbage_collection()
app = _create_app(get_settings())
serve_worker_metrics(get_settings().worker_metrics_port)
