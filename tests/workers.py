"""A real procrastinate worker in its own process, running procrastinate's own command line.

A worker process imports about 1.5 s of code (SQLAlchemy and the ORM models for the schedules and
reports tasks, the providers' clients) before it does anything, and the suite starts about a
hundred. So the plain worker command is forked from a server process that imported that code
once (multiprocessing's forkserver, one per test process): each worker is still a process of its
own, with its own environment, event loop, connections and log file, started by
``procrastinate --app=notification.worker.app worker``'s own entry point, and killed, stopped and
reaped like any other. Any other command runs as a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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

# Everything notification.worker imports, but not itself: importing it reads the settings, which
# are each worker's own.
_PRELOADED = [
    "procrastinate.cli",
    "notification.delivery.sending",
    "notification.delivery.tasks",
    "notification.idempotency.tasks",
    "notification.inbound.tasks",
    "notification.provider.metrics",
    "notification.provider.registry",
    "notification.receipts.smpp",
    "notification.receipts.tasks",
    "notification.reports.tasks",
    "notification.schedules.tasks",
    "notification.stats.tasks",
    "notification.webhooks.tasks",
]
_forking: Any = None


def _fork_server() -> Any:
    global _forking  # noqa: PLW0603 - one server per test process, started on first use
    if _forking is None:
        _forking = multiprocessing.get_context("forkserver")
        _forking.set_forkserver_preload(_PRELOADED)
    return _forking


def _run_worker(env: dict[str, str], log_path: str, argv: list[str]) -> None:
    """In the forked process: the given environment only, output to the log, procrastinate's main."""
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.argv = ["procrastinate", *argv]
    from procrastinate.cli import main

    main()


class ForkedProcess:
    """What the tests use of a ``subprocess.Popen``, for a process forked by the server."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        code: int | None = self._process.exitcode
        return code

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("worker", timeout or 0)
        return int(self._process.exitcode)

    def kill(self) -> None:
        self._process.kill()

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)


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
        self.process: subprocess.Popen[bytes] | ForkedProcess
        if tuple(command) == WORKER_COMMAND:
            forked = _fork_server().Process(target=_run_worker, args=(env, str(log_path), list(command[2:])))
            forked.start()
            self.process = ForkedProcess(forked)
        else:
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
