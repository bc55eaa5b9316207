"""A real procrastinate worker in its own process, as production runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from notification.config import PREFIX, Settings

# Short enough that a test sees retries, leases and stalled jobs come round in seconds.
FAST_DELIVERY = {
    "PROVIDER_TIMEOUT_S": "2",
    "SEND_LEASE_S": "4",
    "RETRY_BASE_S": "0.2",
    "RETRY_MAX_S": "1",
    "WORKER_HEARTBEAT_S": "1",
    "WORKER_POLL_S": "0.2",
    # Tests that scrape the worker pick a free port; the others run no metrics server.
    "WORKER_METRICS_PORT": "0",
    "STALLED_JOB_AFTER_S": "3",
}


WORKER_COMMAND = ("-m", "procrastinate", "--app=notification.worker.app", "worker")


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        provider_url: str,
        log_path: Path,
        *,
        command: Sequence[str] = WORKER_COMMAND,
        **overrides: str,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        values = {
            "DATABASE_URL": settings.psycopg_conninfo,
            "PROVIDER_URL": provider_url,
            "LOG_LEVEL": "INFO",
            "LOG_JSON": "true",
            **FAST_DELIVERY,
            **overrides,
        }
        env.update({PREFIX + key: value for key, value in values.items()})
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Returns once the worker is registered and fetching jobs: procrastinate logs "Starting worker" (at
        INFO, so a worker started with a higher LOG_LEVEL never reports ready). Times a test computes after
        this no longer include the seconds a worker takes to import and connect."""
        deadline = time.monotonic() + timeout_s
        while not any("Starting worker" in line for line in self.log_lines()):
            if self.process.poll() is not None:
                tail = "\n".join(self.log_lines()[-20:])
                msg = f"the worker exited with {self.process.returncode} before it was ready:\n{tail}"
                raise AssertionError(msg)
            if time.monotonic() > deadline:
                msg = f"the worker was not ready within {timeout_s} s"
                raise AssertionError(msg)
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, jobs left in 'doing'."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()
