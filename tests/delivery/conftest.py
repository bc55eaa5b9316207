from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from notification.config import Settings
from notification.provider.fake import RunningFakeProvider, serve_fake_provider
from tests.workers import WorkerProcess


@pytest.fixture
async def fake_provider() -> AsyncIterator[RunningFakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture
def start_worker(
    settings: Settings, fake_provider: RunningFakeProvider, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(log_name: str = "worker.log", **overrides: str) -> WorkerProcess:
        worker = WorkerProcess(settings, fake_provider.base_url, tmp_path / log_name, **overrides)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
