"""The `notification serve` and `notification fake-provider` commands, run as an operator runs them: a process
of their own on a free port, reached over HTTP, then stopped; their refusals of bad input, in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from notification.cli import fake_provider, serve
from notification.config import PREFIX, Settings, get_settings
from tests.api import client_body
from tests.provider_record import arrivals
from tests.servers import free_port

TOKEN = "command-test-token-0123456789abcdef"


class Command:
    """``python -m notification <args>`` with only the given ``NOTIFICATION_*`` settings, its output in a file."""

    def __init__(self, args: list[str], log_path: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        env.update({PREFIX + key: value for key, value in settings.items()})
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notification", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_answering(self, url: str, timeout_s: float = 30.0) -> httpx.Response:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"exited with {self.process.returncode} before answering:\n{self.output()}")
            try:
                return httpx.get(url, timeout=2)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{url} did not answer within {timeout_s} s:\n{self.output()}")
                time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code (uvicorn, once shut down, re-raises the signal it
        caught, so a graceful stop ends as -SIGTERM)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                pytest.fail(f"did not stop on SIGTERM within 20 s:\n{self.output()}")
        self._log.close()
        return self.process.returncode


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    """Whatever a test started is stopped at its end, passed or failed."""
    started: list[Command] = []
    yield started
    for command in started:
        command.stop()


def test_serve_runs_the_api_against_the_configured_database(
    settings: Settings, tmp_path: Path, commands: list[Command]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = Command(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        tmp_path / "serve.log",
        DATABASE_URL=settings.psycopg_conninfo,
        API_TOKENS=TOKEN,
        LOG_LEVEL="INFO",
    )
    commands.append(serve)

    health = serve.wait_until_answering(f"{base}/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = httpx.get(f"{base}/ready")
    assert ready.json() == {"status": "ok", "database": "ok", "migrations": "current"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = client_body(phone="79161234567", tag="served")
    created = httpx.post(f"{base}/api/v1/clients", json=body, headers=auth)
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{base}/api/v1/clients", params={"tag": "served"}, headers=auth).json()
    assert listed["items"] == [created.json()]
    refused = httpx.get(f"{base}/api/v1/clients")
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "SwaggerUIBundle" in httpx.get(f"{base}/docs/").text

    assert serve.stop() == -signal.SIGTERM
    assert "Application shutdown complete." in serve.output()
    access = [json.loads(line) for line in serve.output().splitlines() if '"request handled"' in line]
    assert [(line["method"], line["path"], line["status"]) for line in access] == [
        ("GET", "/health", 200),
        ("GET", "/ready", 200),
        ("POST", "/api/v1/clients", 201),
        ("GET", "/api/v1/clients", 200),
        ("GET", "/api/v1/clients", 401),
        ("GET", "/docs", 200),
    ]
    assert TOKEN not in serve.output()


def test_serve_refuses_to_start_without_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"{PREFIX}DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(serve, ["--port", str(free_port())])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert f"{PREFIX}DATABASE_URL is not set" in result.output


async def test_fake_provider_serves_the_contract_with_the_knobs_given(tmp_path: Path, commands: list[Command]) -> None:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    knobs = {
        "token": TOKEN,
        "latency_ms": 50.0,
        "latency_jitter_ms": 5.0,
        "error_rate": 0.1,
        "reject_rate": 0.15,
        "rate_limit_rate": 0.2,
        "malformed_rate": 0.05,
        "hang_rate": 0.01,
        "seed": 3,
    }
    flags = [part for name, value in knobs.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    fake = Command(["fake-provider", "--port", str(port), *flags, "--down"], tmp_path / "fake.log")
    commands.append(fake)

    assert fake.wait_until_answering(f"{root}/_fake/received").json()["total_requests"] == 0
    message = {"id": 7, "phone": 79161234567, "text": "Hello"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as http:
        # An empty change answers the knobs in force: each flag reached its own.
        options = (await http.patch(f"{root}/_fake/options", json={})).json()
        assert options == {**options, **knobs, "down": True}
        down = await http.post(f"{root}/v1/send/7", json=message, headers=auth)
        no_faults = {"down": False, "error_rate": 0, "reject_rate": 0, "rate_limit_rate": 0, "malformed_rate": 0}
        assert (await http.patch(f"{root}/_fake/options", json=no_faults | {"hang_rate": 0})).status_code == 200
        started = time.perf_counter()
        accepted = await http.post(f"{root}/v1/send/7", json=message, headers=auth)
        took = time.perf_counter() - started
        refused = await http.post(f"{root}/v1/send/7", json=message)

    assert (down.status_code, down.json()) == (503, {"code": 503, "message": "fake provider is down"})
    assert (accepted.status_code, accepted.json()) == (200, {"code": 0, "message": "OK"})
    assert took >= 0.05, "--latency-ms was not applied"
    assert (refused.status_code, refused.json()["code"]) == (401, 401)
    seen = (await arrivals(root, [7]))[7]
    assert [(a.status, a.accepted, a.phone, a.text) for a in seen] == [
        (503, False, 79161234567, "Hello"),
        (200, True, 79161234567, "Hello"),
        (401, False, 79161234567, "Hello"),
    ]
    assert fake.stop() == -signal.SIGTERM


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--error-rate", "1.5"], "every *_rate must be between 0 and 1"),
        (["--error-rate", "0.6", "--hang-rate", "0.6"], "must not exceed 1"),
        (["--latency-ms", "-1"], "must not be negative"),
    ],
)
def test_fake_provider_refuses_impossible_knobs_with_a_usage_error(flags: list[str], message: str) -> None:
    result = CliRunner().invoke(fake_provider, ["--port", str(free_port()), *flags])
    assert result.exit_code == 2
    assert message in result.output
    assert not isinstance(result.exception, ValueError)
