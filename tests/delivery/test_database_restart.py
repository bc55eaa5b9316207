"""The database goes away under a running worker: what it sends meanwhile could not be recorded,
so it stops sending, and it recovers by itself once the database is back.

For a crash, the server is a private one (embedded PostgreSQL on a Unix socket of its own), stopped the hard
way (``pg_ctl -m immediate``: no checkpoint, every connection cut) and started again on the
same socket; the shared test server is never touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from notification.app import create_app
from notification.config import Settings, load_settings
from notification.delivery.watcher import DATABASE_UNREACHABLE, WATCHER_APPLICATION_NAME
from notification.dev.embedded_db import start_embedded_postgres
from notification.dev.fake_provider import RunningFakeProvider
from notification.migrate import upgrade_database
from tests.api import Api, create_mailing
from tests.conftest import API_TOKEN, PROJECT_ROOT
from tests.delivery.observe import counts, duplicate_bound, insert_clients, log_contains, message_ids, resent, rows
from tests.waiting import wait_for
from tests.workers import WorkerProcess

OUTAGE_S = 10.0


class RestartablePostgres:
    """A private server that can be crashed and started again where it was."""

    def __init__(self, root: Path) -> None:
        self._server = start_embedded_postgres(root, keep_data=False)
        self.url = self._server.get_uri()

    def crash(self) -> None:
        """What `pg_ctl -m immediate stop` does: SIGQUIT to the postmaster, no checkpoint."""
        pid = self._server.pid
        assert pid is not None
        os.kill(pid, signal.SIGQUIT)
        assert self._server._server is not None
        self._server._server.wait(timeout=60)

    def start(self) -> None:
        # The same data, the same socket directory: what a supervisor restarting it would do.
        self._server._launch()

    def close(self) -> None:
        self._server.stop()


@pytest.fixture
def private_postgres() -> Iterator[RestartablePostgres]:
    server = RestartablePostgres(PROJECT_ROOT / ".notification" / "restart-test")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_settings(private_postgres: RestartablePostgres) -> Settings:
    with psycopg.connect(private_postgres.url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE notification")
    url = private_postgres.url.replace("/postgres?", "/notification?")
    settings = replace(load_settings({}), database_url=url, log_level="WARNING", api_tokens=(API_TOKEN,))
    upgrade_database(settings)
    return settings


@pytest.fixture
async def private_api(private_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(private_settings)) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield api


@pytest.fixture
def private_worker(
    private_settings: Settings, fake_provider: RunningFakeProvider, tmp_path: Path
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(private_settings, fake_provider.base_url, tmp_path / "worker.log")
    try:
        yield worker
    finally:
        worker.stop()


async def test_worker_rides_out_a_database_crash_mid_mailing_and_loses_nothing(
    private_postgres: RestartablePostgres,
    private_settings: Settings,
    private_api: AsyncTestClient[Litestar],
    fake_provider: RunningFakeProvider,
    private_worker: WorkerProcess,
) -> None:
    db = private_settings.psycopg_conninfo
    await insert_clients(db, 3_000)
    # About 400 sends/s: the crash finds the mailing mid-way, with requests in flight.
    fake_provider.set_options(latency_ms=500)
    mailing = await create_mailing(private_api)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 300, timeout_s=30)

    await asyncio.to_thread(private_postgres.crash)
    crashed_at = time.time()
    await asyncio.sleep(OUTAGE_S)  # the outage itself
    await asyncio.to_thread(private_postgres.start)
    restarted_at = time.time()
    during = [a for a in fake_provider.arrivals() if crashed_at <= a.arrived_at.timestamp() < restarted_at]

    await wait_for(lambda: _counts_when_up(db, mailing["id"]), lambda c: c.get("sent") == 3_000, timeout_s=60)
    assert private_worker.process.poll() is None, "the same worker process carried on"
    received = fake_provider.received()
    assert set(received.accepted) == await message_ids(db, mailing["id"])
    assert max(received.accepted.values()) <= 2
    duplicates = resent(received)
    # Settings of WorkerProcess: 200 requests in flight, 4 batches, answers written 100 at a time.
    assert duplicates <= duplicate_bound(200, 4, 100), duplicates
    assert log_contains(private_worker, "worker stopped by itself")
    assert log_contains(private_worker, "database reachable again")
    print(
        f"\ndatabase down {OUTAGE_S:.0f} s mid-mailing: {len(during)} provider requests during the outage,"
        f" {duplicates} duplicates, everything sent {time.time() - restarted_at:.1f} s after the restart"
    )


async def _counts_when_up(db: str, mailing_id: int) -> dict[str, Any]:
    try:
        return await counts(db, mailing_id)
    except psycopg.OperationalError as exc:
        return {"error": str(exc)}


async def test_batches_stopped_for_a_lost_database_connection_leave_nothing_behind(
    client: Api,
    settings: Settings,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 1_000)
    fake_provider.set_options(latency_ms=500)
    worker = start_worker()
    mailing = await create_mailing(client)
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] >= 100, timeout_s=30)

    # The watcher's connection breaks while the database stays up (a blip, a proxy restarting):
    # running batches stop and give their unsent messages back, which a follow-up then sends.
    terminated = await rows(
        db,
        # This test's database only: the other test process's workers share the server.
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %(name)s AND datname = current_database()",
        {"name": WATCHER_APPLICATION_NAME},
    )
    assert terminated == [(True,)]
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 1_000, timeout_s=30)
    assert log_contains(worker, DATABASE_UNREACHABLE)
    received = fake_provider.received()
    assert received.total_requests == 1_000
    assert set(received.accepted.values()) == {1}
