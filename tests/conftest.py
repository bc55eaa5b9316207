"""Every test talks to a real PostgreSQL: NOTIFICATION_TEST_DATABASE_URL, else the server on
127.0.0.1:5432, else an embedded one. Each test process has its own database, a clone of a
migrated template, put back to the template's state after every test (see ``tests/databases.py``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.sync_api import Browser, Page
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from notification.app import create_app
from notification.config import Settings, load_settings
from notification.dev.fake_provider import RunningFakeProvider, serve_fake_provider
from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc
from notification.logging import configure_logging
from notification.migrate import upgrade_database
from tests.api import API_TOKEN
from tests.browser import launched_chromium, local_page
from tests.console_client import Console
from tests.databases import TestDatabase
from tests.either_provider import SendingProvider
from tests.servers import serve_in_thread
from tests.workers import WorkerProcess

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL of the server, connected to its maintenance database."""
    configured = os.environ.get("NOTIFICATION_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    from notification.dev.embedded_db import start_embedded_postgres

    server = start_embedded_postgres(PROJECT_ROOT / ".notification" / "test-postgres", keep_data=False)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def template_database_url(pg_server_url: str) -> Iterator[str]:
    name = f"notification_tpl_{os.getpid()}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    upgrade_database(replace(load_settings({}), database_url=url))
    try:
        yield url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def test_database(pg_server_url: str, template_database_url: str) -> Iterator[TestDatabase]:
    template = make_url(template_database_url).database
    assert template is not None
    database = TestDatabase(pg_server_url, template, f"notification_t_{os.getpid()}", template_database_url)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def database_url(pg_server_url: str, test_database: TestDatabase) -> Iterator[str]:
    yield _with_database(pg_server_url, test_database.name)
    test_database.reset()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return replace(
        load_settings({}),
        database_url=database_url,
        log_json=True,
        log_level="WARNING",
        api_tokens=(API_TOKEN,),
        # Tests send many wrong tokens on purpose; the throttle's own tests set their allowance.
        sign_in_failures_allowed=1_000_000,
    )


_BUILT_APPS: dict[Settings, Litestar] = {}
"""Apps by their settings: building one (registering every route) costs about 0.4 s of CPU, most
of a short test, and tests of one process mostly share their settings (and their database)."""


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """The app for these settings, built once per test process and started afresh by each test's
    client: everything it keeps lives in its lifespan or in the database, which is reset."""
    built = _BUILT_APPS.get(settings)
    if built is None:
        if len(_BUILT_APPS) >= 4:
            _BUILT_APPS.pop(next(iter(_BUILT_APPS)))
        built = _BUILT_APPS[settings] = create_app(settings)
    else:
        # What building it does first, so that logs go where this test captures them.
        configure_logging(settings)
        # The engine and its session maker belong to the event loop of the test that made them.
        for database in built.plugins.get(SQLAlchemyPlugin).config:
            database.engine_instance = None
            database.session_maker = None
    return built


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        yield test_client


@pytest.fixture
def live_server(app: Litestar) -> Iterator[str]:
    """The app served over real HTTP on a free local port; yields its base URL."""
    with serve_in_thread(app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (skips without it, fails under CI); one per test module, each
    test's page in a fresh context of its own."""
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
async def anonymous(app: Litestar) -> AsyncIterator[Console]:
    """The console's HTTP client, not signed in."""
    async with AsyncTestClient(app=app) as client:
        yield Console(client)


@pytest.fixture
async def console(anonymous: Console) -> Console:
    """The console's HTTP client, signed in with the API token."""
    response = await anonymous.sign_in()
    assert response.status_code == 200, response.text
    return anonymous


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A browser page on the live app that fails the test if it loads anything from another host."""
    with local_page(browser, live_server) as opened:
        yield opened


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.sqlalchemy_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking rows directly, beside the API."""
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        yield session


@pytest.fixture
async def fake_provider() -> AsyncIterator[RunningFakeProvider]:
    """The project's fake SMS provider on a free port, in this process; its record is the test's to read."""
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture(params=["http", "smpp"])
async def sending_provider(
    request: pytest.FixtureRequest, client: AsyncTestClient[Litestar], fake_provider: RunningFakeProvider
) -> AsyncIterator[SendingProvider]:
    """The provider a delivery guarantee is checked against: the fake provider over HTTP, or the
    fake SMSC stored as the only provider (a window wide enough for the HTTP tests' concurrency)."""
    if request.param == "http":
        yield SendingProvider("http", fake_provider)
        return
    async with serve_fake_smsc(FakeSmscOptions()) as smsc:
        settings = {"host": "127.0.0.1", "port": smsc.port, "system_id": "notification"}
        body = {"name": "smsc", "kind": "smpp", "settings": settings, "window": 100}
        stored = await client.post("/api/v1/providers", json=body)
        assert stored.status_code == 201, stored.text
        yield SendingProvider("smpp", fake_provider, smsc)


@pytest.fixture
def start_worker(
    settings: Settings, fake_provider: RunningFakeProvider, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts real procrastinate workers on the test's database, sending to ``fake_provider``; keyword
    arguments override ``NOTIFICATION_*`` settings (without the prefix). Every one is stopped at the end."""
    started: list[WorkerProcess] = []

    def start(log_name: str | None = None, **overrides: str) -> WorkerProcess:
        log_path = tmp_path / (log_name or f"worker-{len(started)}.log")
        worker = WorkerProcess(settings, fake_provider.base_url, log_path, **overrides)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
