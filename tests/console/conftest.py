"""The console under test: a signed-in HTTP client for handler tests, and for browser tests the
app served on a local port with a real worker, the fake provider and Debian's Chromium."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from notification.app import create_app
from notification.config import Settings
from notification.provider.fake import RunningFakeProvider, serve_fake_provider
from tests.conftest import API_TOKEN
from tests.workers import WorkerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
CSRF_COOKIE = "notification_csrf"
SESSION_COOKIE = "notification_session"


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the page carries no CSRF field"
    return found.group(1)


class Console:
    """An HTTP client of the console that signs in and sends forms as a browser would."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, token: str = API_TOKEN, timezone: str = "Europe/Moscow") -> Any:
        page = await self.client.get("/admin/sign-in")
        self.csrf = csrf_of(page.text)
        signed_in = await self.client.post(
            "/admin/sign-in", data={"_csrf_token": self.csrf, "token": token, "timezone": timezone}
        )
        # A signed-in session accepts only tokens minted for it: the page signing in led to has one.
        if found := re.search(r'"x-csrftoken": "([^"]+)"', signed_in.text):
            self.csrf = found.group(1)
        return signed_in

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post carrying the CSRF token (unless the data names its own)."""
        form = {"_csrf_token": self.csrf, **(data or {})}
        return await self.client.post(path, data=form, **kwargs)

    async def upload(self, path: str, content: bytes, filename: str = "clients.csv") -> Any:
        return await self.client.post(
            path, data={"_csrf_token": self.csrf}, files={"file": (filename, content, "text/csv")}
        )


@pytest.fixture
async def anonymous(app: Litestar) -> AsyncIterator[Console]:
    async with AsyncTestClient(app=app) as client:
        yield Console(client)


@pytest.fixture
async def console(anonymous: Console) -> Console:
    response = await anonymous.sign_in()
    assert response.status_code == 200, response.text
    return anonymous


# -- browser tests -----------------------------------------------------------------------------


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install -y chromium)")


class ServedApp:
    """The app on a local port, served by uvicorn in a thread, as a browser reaches it."""

    def __init__(self, app: Litestar) -> None:
        # Bound here so the port is known before uvicorn starts and early connections queue.
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                msg = "the console app did not start"
                raise RuntimeError(msg)
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture
def provider() -> Iterator[RunningFakeProvider]:
    with serve_fake_provider() as fake:
        yield fake


@pytest.fixture
def served(settings: Settings, provider: RunningFakeProvider, tmp_path: Path) -> Iterator[ServedApp]:
    """The console and API on a port, a real worker delivering to the fake provider."""
    worker = WorkerProcess(settings, provider.base_url, tmp_path / "worker.log")
    try:
        with ServedApp(create_app(settings)) as served_app:
            yield served_app
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def screenshots() -> Path | None:
    """Where the browser tests save the README's screenshots: only when asked, so CI writes nothing."""
    folder = os.environ.get("NOTIFICATION_SCREENSHOTS_DIR")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path
