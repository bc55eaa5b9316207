"""``/metrics``: the HTTP metrics of Litestar's Prometheus middleware, plus domain gauges read from
the database at scrape time (the worker is another process: what it did is read from its rows).

prometheus_client collects synchronously; the database is async. So each scrape first reads a
snapshot with the app's engine, then renders it through a registry of its own, after the
process-wide one that holds the HTTP metrics."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

import structlog
from litestar import Controller, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from notification.lib.sql import load
from notification.mailings.models import Mailing, MailingStatus
from notification.messages.models import DeliveryState, ErrorKind, MessageStatus
from notification.stats.queries import counted_error_kinds

PREFIX = "notification"
MAILING_STATUSES = tuple(s.value for s in MailingStatus)
ERROR_KINDS = tuple(k.value for k in ErrorKind)

logger = structlog.get_logger(__name__)


def prometheus_config() -> PrometheusConfig:
    # Paths grouped by their template: one series per route, not one per client id.
    return PrometheusConfig(app_name=PREFIX, prefix=f"{PREFIX}_http", group_path=True)


statements = load(__package__, "metrics.sql")

# The status rule is the model's own column expression: written once, in mailings/models.py.
_MAILINGS = select(cast("ColumnElement[str]", Mailing.status).label("status"), func.count().label("n")).group_by(
    literal_column("1")
)


@dataclass
class DomainSnapshot:
    database_up: bool = False
    messages: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    mailings: dict[str, int] = field(default_factory=dict)
    clients: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    queue_jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_due_s: float = 0.0


async def read_queue(conn: AsyncConnection | AsyncSession) -> tuple[dict[tuple[str, str], int], float]:
    """Jobs by (queue, status), and the age in seconds of the oldest due job still waiting."""
    jobs = {(row.queue_name, row.status): int(row.n) for row in await conn.execute(statements.text("queue"))}
    return jobs, max(0.0, float((await conn.execute(statements.text("oldest_due"))).scalar_one()))


async def read_snapshot(engine: AsyncEngine) -> DomainSnapshot:
    snapshot = DomainSnapshot()
    try:
        async with engine.connect() as conn:
            for row in await conn.execute(statements.text("messages")):
                snapshot.messages[row.status] = int(row.n)
                snapshot.attempts += int(row.attempts)
            snapshot.mailings = {row.status: int(row.n) for row in await conn.execute(_MAILINGS)}
            snapshot.clients = int((await conn.execute(statements.text("clients"))).scalar_one())
            snapshot.errors = await counted_error_kinds(conn)
            rows = await conn.execute(statements.text("deliveries"))
            snapshot.deliveries = {row.delivery_state: int(row.n) for row in rows}
            snapshot.queue_jobs, snapshot.oldest_due_s = await read_queue(conn)
    except Exception:  # a scrape during an outage still serves the HTTP metrics
        logger.warning("metrics: database unreachable", exc_info=True)
        return DomainSnapshot()
    snapshot.database_up = True
    return snapshot


class SnapshotCollector(Collector):
    def __init__(self, snapshot: DomainSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        s = self.snapshot
        up = GaugeMetricFamily(
            f"{PREFIX}_metrics_database_up", "1 when the domain metrics below could be read from the database"
        )
        up.add_metric([], 1.0 if s.database_up else 0.0)
        yield up
        if not s.database_up:
            return
        messages = GaugeMetricFamily(f"{PREFIX}_messages", "Messages by status", labels=["status"])
        for message_status in MessageStatus:
            messages.add_metric([message_status.value], s.messages.get(message_status.value, 0))
        yield messages
        mailings = GaugeMetricFamily(f"{PREFIX}_mailings", "Mailings by status", labels=["status"])
        for status in MAILING_STATUSES:
            mailings.add_metric([status], s.mailings.get(status, 0))
        yield mailings
        clients = GaugeMetricFamily(f"{PREFIX}_clients", "Clients in the directory")
        clients.add_metric([], s.clients)
        yield clients
        attempts = GaugeMetricFamily(
            f"{PREFIX}_send_attempts", "Provider requests made for the messages in the database (sum of attempts)"
        )
        attempts.add_metric([], s.attempts)
        yield attempts
        errors = GaugeMetricFamily(
            f"{PREFIX}_message_errors", "Messages whose last provider error is of this kind", labels=["kind"]
        )
        for kind in ERROR_KINDS:
            errors.add_metric([kind], s.errors.get(kind, 0))
        yield errors
        deliveries = GaugeMetricFamily(
            f"{PREFIX}_message_deliveries", "Messages by delivery state (what their receipts said)", labels=["state"]
        )
        for state in DeliveryState:
            deliveries.add_metric([state.value], s.deliveries.get(state.value, 0))
        yield deliveries
        jobs = GaugeMetricFamily(f"{PREFIX}_queue_jobs", "Jobs of the job queue", labels=["queue", "status"])
        for (queue, status), n in sorted(s.queue_jobs.items()):
            jobs.add_metric([queue, status], n)
        yield jobs
        lag = GaugeMetricFamily(
            f"{PREFIX}_queue_oldest_due_seconds", "Age of the oldest job waiting past its due time (0: none)"
        )
        lag.add_metric([], s.oldest_due_s)
        yield lag


def render(snapshot: DomainSnapshot) -> bytes:
    http_registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
        http_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(http_registry)  # type: ignore[no-untyped-call]
    domain_registry = CollectorRegistry(auto_describe=False)
    domain_registry.register(SnapshotCollector(snapshot))
    return generate_latest(http_registry) + generate_latest(domain_registry)


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get("/", summary="Prometheus metrics")
    async def metrics(self, db_engine: AsyncEngine) -> Response[bytes]:
        body = render(await read_snapshot(db_engine))
        return Response(body, media_type=CONTENT_TYPE_LATEST)


__all__ = ("MetricsController", "prometheus_config", "read_queue", "read_snapshot", "render")
