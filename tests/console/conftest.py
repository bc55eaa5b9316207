"""The console under test in a browser: the app served on a local port with a real worker
delivering to the fake provider. Its HTTP client and forms are tests/console_client.py; the
browser is the shared one (tests/browser.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider, serve_fake_provider
from tests.workers import WorkerProcess


@pytest.fixture
def provider() -> Iterator[RunningFakeProvider]:
    """The fake provider on a thread of its own: the browser tests are synchronous."""
    with serve_fake_provider() as fake:
        yield fake


@pytest.fixture
def served(live_server: str, settings: Settings, provider: RunningFakeProvider, tmp_path: Path) -> Iterator[str]:
    """The console and API on a port (their base URL), a real worker delivering to the fake provider."""
    worker = WorkerProcess(settings, provider.base_url, tmp_path / "worker.log")
    try:
        yield live_server
    finally:
        worker.stop()


@pytest.fixture
def screenshots() -> Path | None:
    """Where the browser tests save the README's screenshots: only when asked, so CI writes nothing."""
    folder = os.environ.get("NOTIFICATION_SCREENSHOTS_DIR")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path
