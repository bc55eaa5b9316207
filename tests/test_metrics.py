"""/metrics: HTTP metrics of the API and domain gauges read from the database at scrape time."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import MESSAGES, Api, add_clients, create_mailing, utc_now
from tests.servers import free_port
from tests.waiting import wait_for
from tests.workers import WorkerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    """A worker serving its own metrics, on a free port."""
    return start_worker(WORKER_METRICS_PORT=str(free_port()))


async def scrape_worker(worker: WorkerProcess) -> Samples:
    """The worker's own endpoint: what its provider requests took."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{worker.env['NOTIFICATION_WORKER_METRICS_PORT']}/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def scrape(api: Api) -> Samples:
    response = await api.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def http_requests(samples: Samples, method: str, path: str, status: int) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "notification_http_requests_total"
        and {("method", method), ("path", path), ("status_code", str(status))} <= labels
    )


async def _create_mailing(api: Api, tag: str) -> int:
    mailing: dict[str, Any] = await create_mailing(api, text="Metrics", filter={"tags": [tag]})
    mailing_id: int = mailing["id"]
    return mailing_id


async def _messages(api: Api, mailing_id: int) -> list[dict[str, Any]]:
    response = await api.get(MESSAGES, params={"mailing_id": mailing_id, "limit": 100})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_delivered_mailing_shows_in_the_metrics(
    client: Api, fake_provider: RunningFakeProvider, worker: WorkerProcess
) -> None:
    await add_clients(client, 5, tag="delivered")
    await add_clients(client, 3, tag="outage")
    mailing_id = await _create_mailing(client, "delivered")
    await wait_for(lambda: _messages(client, mailing_id), lambda ms: [m["status"] for m in ms] == ["sent"] * 5)

    # A second mailing meets a provider outage: its messages wait for a retry, their last error recorded.
    fake_provider.set_options(down=True)
    failing_id = await _create_mailing(client, "outage")
    failing = await wait_for(
        lambda: _messages(client, failing_id),
        lambda ms: len(ms) == 3 and all(m["last_error"] for m in ms),
    )

    samples = await scrape(client)

    # Provider latencies live in the worker: five answered 200, and a latency sample each.
    provider = await scrape_worker(worker)
    assert value(provider, "notification_provider_request_seconds_count", provider="default", outcome="sent") == 5
    assert value(provider, "notification_provider_request_seconds_sum", provider="default", outcome="sent") > 0
    assert value(provider, "notification_provider_requests_total", provider="default", outcome="sent", kind="ok") == 5
    assert (
        value(
            provider, "notification_provider_requests_total", provider="default", outcome="transient", kind="http_5xx"
        )
        >= 3
    )

    assert value(samples, "notification_metrics_database_up") == 1
    assert value(samples, "notification_messages", status="sent") == 5
    assert value(samples, "notification_messages", status="pending") == 3
    assert value(samples, "notification_messages", status="failed") == 0
    assert value(samples, "notification_clients") == 8
    assert value(samples, "notification_mailings", status="finished") == 1
    assert value(samples, "notification_mailings", status="running") == 1
    assert value(samples, "notification_mailings", status="scheduled") == 0
    assert value(samples, "notification_message_errors", kind="http_5xx") >= 1
    assert sum(v for (name, _), v in samples.items() if name == "notification_message_errors") == 3
    # Attempts only grow while the worker retries: at least what the API showed a moment ago.
    assert value(samples, "notification_send_attempts") >= 5 + sum(m["attempts"] for m in failing)
    assert value(samples, "notification_send_attempts") <= fake_provider.received().total_requests
    assert value(samples, "notification_queue_oldest_due_seconds") >= 0
    assert any(name == "notification_queue_jobs" for name, _ in samples)

    # HTTP metrics, one series per route template.
    assert http_requests(samples, "POST", "/api/v1/mailings", 201) >= 2
    assert http_requests(samples, "GET", "/api/v1/messages", 200) >= 2
    assert any(name == "notification_http_request_duration_seconds_count" for name, _ in samples)
    await client.get(f"/api/v1/mailings/{mailing_id}/stats")
    after = await scrape(client)
    assert http_requests(after, "GET", "/api/v1/mailings/{mailing_id}/stats", 200) >= 1
    paths = {dict(labels)["path"] for _, labels in after if "path" in dict(labels)}
    assert not [path for path in paths if re.search(r"/\d+(/|$)", path)]


async def test_queue_depth_and_lag(client: Api, db: AsyncSession) -> None:
    await db.execute(
        text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, status, scheduled_at) VALUES"
            " ('metrics-test', 'noop', 'todo', now() - interval '90 seconds'),"
            " ('metrics-test', 'noop', 'todo', now() + interval '1 hour'),"
            " ('metrics-test', 'noop', 'todo', NULL),"
            " ('metrics-test', 'noop', 'doing', NULL)"
        )
    )
    await db.commit()

    samples = await scrape(client)

    assert value(samples, "notification_queue_jobs", queue="metrics-test", status="todo") == 3
    assert value(samples, "notification_queue_jobs", queue="metrics-test", status="doing") == 1
    assert 90 <= value(samples, "notification_queue_oldest_due_seconds") < 150


async def test_an_idle_queue_has_no_lag(client: Api) -> None:
    samples = await scrape(client)
    assert value(samples, "notification_queue_oldest_due_seconds") == 0
    assert value(samples, "notification_messages", status="sent") == 0
    assert value(samples, "notification_send_attempts") == 0


async def test_metrics_answer_while_the_database_is_away(settings: Settings) -> None:
    app = create_app(replace(settings, database_url="postgresql://postgres@127.0.0.1:1/nope"))
    async with AsyncTestClient(app=app) as api:
        await api.get("/health")
        samples = await scrape(api)
    assert value(samples, "notification_metrics_database_up") == 0
    assert http_requests(samples, "GET", "/health", 200) >= 1
    assert not any(name == "notification_messages" for name, _ in samples)


async def test_a_window_that_never_opens_is_counted_as_its_own_error_kind(
    client: Api, fake_provider: RunningFakeProvider, worker: WorkerProcess
) -> None:
    """The window 1-2 hours ahead of a mailing that ends in 30 minutes: planning expires the
    audience with the kind decided there, and /metrics counts it under that kind, not `other`."""
    await add_clients(client, 4, tag="windowed", timezone="UTC")
    now = utc_now()
    mailing = await create_mailing(
        client,
        text="Never in time",
        end_at=(now + dt.timedelta(minutes=30)).isoformat(),
        filter={"tags": ["windowed"]},
        send_window={
            "start": (now + dt.timedelta(hours=1)).strftime("%H:%M"),
            "end": (now + dt.timedelta(hours=2)).strftime("%H:%M"),
        },
    )
    mailing_id = mailing["id"]
    messages = await wait_for(
        lambda: _messages(client, mailing_id), lambda ms: len(ms) == 4 and all(m["status"] == "expired" for m in ms)
    )
    assert {m["error_kind"] for m in messages} == {"window_never_opens"}

    samples = await scrape(client)
    assert value(samples, "notification_message_errors", kind="window_never_opens") == 4
    assert value(samples, "notification_message_errors", kind="other") == 0
    assert value(samples, "notification_messages", status="expired") == 4
    assert fake_provider.received().total_requests == 0
