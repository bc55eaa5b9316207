"""Shared plumbing of the benchmarks: a throwaway database and the service's processes."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url

from notification.config import PREFIX, Settings, load_settings
from notification.migrate import upgrade_database

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_database(server_url: str | None) -> Iterator[Settings]:
    """A fresh, migrated database dropped afterwards; on the local server, else an embedded one."""
    embedded = None
    if server_url is None:
        try:
            with psycopg.connect(LOCAL_SERVER, connect_timeout=2):
                server_url = LOCAL_SERVER
        except psycopg.Error:
            from notification.dev.embedded_db import start_embedded_postgres

            embedded = start_embedded_postgres(PROJECT_ROOT / ".notification" / "bench-postgres", keep_data=False)
            server_url = embedded.get_uri()
    name = f"notification_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    settings = replace(load_settings({}), database_url=url)
    try:
        upgrade_database(settings)
        yield settings
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if embedded is not None:
            embedded.cleanup()


# One API token per benchmark run, accepted by the services it starts.
API_TOKEN = secrets.token_urlsafe(24)
AUTH_HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}


def service_env(settings: Settings, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env[PREFIX + "DATABASE_URL"] = settings.psycopg_conninfo
    env[PREFIX + "API_TOKENS"] = API_TOKEN
    env.update({PREFIX + key: value for key, value in values.items()})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


# Generous: on a busy two-core machine a benchmark's four or five processes start at once, and
# each spends seconds importing before it listens. Only a process that never comes up waits it out.
STARTUP_TIMEOUT_S = 120.0


def wait_http(url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout_s} s")


def python() -> str:
    return sys.executable


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """Asks every process to stop at once, then waits for each: they wind down side by side."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent on anything but idling, so far."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS
