"""One id finds every log line about it, in the API and in the worker; phones and secrets never appear."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
import structlog
from litestar import Litestar
from psycopg import sql
from sqlalchemy import make_url

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.logging import configure_logging, mask_secrets
from tests.api import Api, create_client, utc_now
from tests.conftest import API_TOKEN
from tests.waiting import wait_for
from tests.workers import WorkerProcess

Line = dict[str, Any]

# Made up per run, so that finding one in a log can only mean it leaked from this run's configuration.
PROVIDER_TOKEN = f"provider-{secrets.token_urlsafe(18)}"
DATABASE_PASSWORD = f"db-{secrets.token_urlsafe(18)}"


@pytest.fixture(scope="session")
def secret_role(pg_server_url: str) -> Iterator[str]:
    """A login role with a password (the local server trusts 127.0.0.1 and never asks for it, but it is in the
    URL every process is given, which is what a log could leak)."""
    role = f"notification_secret_{os.getpid()}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(DATABASE_PASSWORD))
        )
    yield role
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def log_level() -> str:
    return "INFO"


@pytest.fixture
def settings(settings: Settings, database_url: str, secret_role: str, log_level: str) -> Settings:
    """The suite's settings logging at ``log_level`` (INFO like production unless a test says otherwise), with a
    provider token and a database password, connecting as the role with the password."""
    with psycopg.connect(database_url, autocommit=True) as owner:
        role = sql.Identifier(secret_role)
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            owner.execute(sql.SQL(f"GRANT ALL ON ALL {kind} IN SCHEMA public TO {{}}").format(role))
        owner.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(role))
    url = make_url(database_url).set(username=secret_role, password=DATABASE_PASSWORD)
    return replace(
        settings,
        log_level=log_level,
        database_url=url.render_as_string(hide_password=False),
        provider_token=PROVIDER_TOKEN,
    )


@pytest.fixture
def api_log(settings: Settings, app: Litestar) -> io.StringIO:
    """Everything the API process logs, as the JSON lines it writes (configured after the app is built)."""
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    return stream


def parse(lines: list[str]) -> list[Line]:
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            parsed.append(value)
    return parsed


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
async def test_one_id_finds_every_line_about_it(
    client: Api,
    api_log: io.StringIO,
    settings: Settings,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
    log_level: str,
) -> None:
    # The fake refuses a request without the token: every message sent proves the worker had it.
    fake_provider.set_options(error_rate=0.5, seed=1, token=PROVIDER_TOKEN)
    worker = start_worker(LOG_LEVEL=log_level, PROVIDER_TOKEN=PROVIDER_TOKEN)
    assert DATABASE_PASSWORD in worker.env["NOTIFICATION_DATABASE_URL"]
    clients = [await create_client(client, operator_code="916", tag="logs") for _ in range(12)]
    followed = clients[0]
    patched = await client.patch(
        f"/api/v1/clients/{followed['id']}", json={"timezone": "Asia/Tokyo"}, headers={"X-Request-ID": "patch-1"}
    )
    assert patched.status_code == 200, patched.text
    created = await client.post(
        "/api/v1/mailings",
        json={
            "text": "Spring sale",
            "kind": "service",
            "start_at": (utc_now() - dt.timedelta(minutes=1)).isoformat(),
            "end_at": (utc_now() + dt.timedelta(hours=1)).isoformat(),
            "filter": {"tags": ["logs"]},
        },
        headers={"X-Request-ID": "create-mailing-1"},
    )
    assert created.status_code == 201, created.text
    mailing_id = created.json()["id"]
    assert created.headers["X-Request-ID"] == "create-mailing-1"

    async def stats() -> dict[str, Any]:
        response = await client.get(f"/api/v1/mailings/{mailing_id}/stats", params={"limit": 100})
        body: dict[str, Any] = response.json()
        return body

    final = await wait_for(stats, lambda s: s["by_status"]["sent"] == len(clients), timeout_s=60)
    worker.stop()  # every line flushed
    api_lines = parse(api_log.getvalue().splitlines())
    worker_lines = parse(worker.log_lines())
    provider_calls = [line for line in worker_lines if line["event"] == "provider answered"]

    # The mailing: its creation request, its planning, every provider call of its messages.
    about_mailing = [line for line in api_lines if line.get("mailing_id") == mailing_id]
    [creation] = [line for line in about_mailing if line["event"] == "mailing created"]
    assert creation["request_id"] == "create-mailing-1"
    assert creation["level"] == "info"
    [access] = [
        line
        for line in about_mailing
        if line["event"] == "request handled" and line["request_id"] == "create-mailing-1"
    ]
    assert access["method"] == "POST"
    assert access["path"] == "/api/v1/mailings"
    assert access["status"] == 201
    assert access["duration_ms"] >= 0
    planned = [line for line in worker_lines if line["event"] == "mailing planned"]
    assert planned
    assert all(line["mailing_id"] == mailing_id for line in planned)
    assert provider_calls
    assert all(line["mailing_id"] == mailing_id for line in provider_calls)
    assert len(provider_calls) == fake_provider.received().total_requests

    # One message: every attempt, each with the provider's answer.
    retried = [m for m in final["messages"]["items"] if m["attempts"] > 1]
    assert retried, "error_rate=0.5 over 12 messages left no retry"
    message = retried[0]
    attempts = [line for line in provider_calls if line["message_id"] == message["id"]]
    record = fake_provider.message(message["id"])
    assert record is not None
    assert len(attempts) == record.requests == message["attempts"]
    assert [line["attempt"] for line in attempts] == sorted({line["attempt"] for line in attempts})
    assert all(line["client_id"] == message["client_id"] for line in attempts)
    *failed, succeeded = attempts
    assert all(line["outcome"] == "transient" and line["status_code"] == 500 and line["error"] for line in failed)
    assert succeeded["outcome"] == "sent"
    assert succeeded["status_code"] == 200
    assert all(isinstance(line["latency_ms"], float | int) for line in attempts)

    # One client: its creation, its update and its messages.
    about_client = [line for line in api_lines if line.get("client_id") == followed["id"]]
    events = [line["event"] for line in about_client]
    assert "client created" in events
    [update] = [line for line in about_client if line["event"] == "client updated"]
    assert update["request_id"] == "patch-1"
    assert update["fields"] == ["timezone"]
    assert update["phone"] == "*******" + followed["phone"][-4:]
    assert {(line["method"], line["status"]) for line in about_client if line["event"] == "request handled"} >= {
        ("POST", 201),
        ("PATCH", 200),
    }
    client_calls = [line for line in provider_calls if line["client_id"] == followed["id"]]
    assert client_calls
    assert client_calls[-1]["outcome"] == "sent"

    # Nothing leaks: no full phone number, no token and no password, in either process, whatever the level.
    if log_level == "DEBUG":
        assert any(line["level"] == "debug" for line in worker_lines)
        assert any(line["level"] == "debug" for line in api_lines)
    everything = api_log.getvalue() + "\n".join(worker.log_lines())
    for created_client in clients:
        assert created_client["phone"] not in everything
    for secret in (API_TOKEN, PROVIDER_TOKEN, DATABASE_PASSWORD):
        assert secret not in everything


async def test_every_request_gets_a_request_id_and_one_access_line(client: Api, api_log: io.StringIO) -> None:
    given = await client.get("/api/v1/clients", headers={"X-Request-ID": "abc-123.x"})
    generated = await client.get("/api/v1/clients", headers={"X-Request-ID": 'bad id"\\'})
    missing_route = await client.get("/nowhere")
    health = await client.get("/health")

    assert given.headers["X-Request-ID"] == "abc-123.x"
    new_id = generated.headers["X-Request-ID"]
    assert new_id != 'bad id"\\'
    assert len(new_id) == 32
    assert missing_route.status_code == 404
    assert missing_route.headers["X-Request-ID"]
    assert health.headers["X-Request-ID"]
    access = [line for line in parse(api_log.getvalue().splitlines()) if line["event"] == "request handled"]
    assert [(line["method"], line["path"], line["status"]) for line in access] == [
        ("GET", "/api/v1/clients", 200),
        ("GET", "/api/v1/clients", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/health", 200),
    ]
    assert [line["request_id"] for line in access] == [
        "abc-123.x",
        new_id,
        missing_route.headers["X-Request-ID"],
        health.headers["X-Request-ID"],
    ]


async def test_request_ids_and_path_ids_do_not_leak_into_the_next_request(client: Api, api_log: io.StringIO) -> None:
    created = await create_client(client)
    await client.get(f"/api/v1/clients/{created['id']}")
    await client.get("/api/v1/mailings")
    lines = [line for line in parse(api_log.getvalue().splitlines()) if line["event"] == "request handled"]
    assert lines[1]["client_id"] == created["id"]
    assert "client_id" not in lines[2]
    assert len({line["request_id"] for line in lines}) == 3


def test_the_masking_processor() -> None:
    event = {
        "event": "sent to 79161234567, call +7 916 not masked",
        "phone": 79161234567,
        "nested": {"phones": ["79031112233", "x79031112233y"], "count": 12345678901},
        "api_token": "abc",
        "Authorization": "Bearer xyz",
        "provider_token": "",
        "password": "pw",
        "headers": {"authorization": "Bearer xyz", "accept": "*/*"},
        "note": "got header Bearer sekrit in postgresql://user:pa55@host/db",
        "message_id": 42,
        "latency_ms": 1.5,
        "longer": "179161234567",
    }
    masked = mask_secrets(None, "info", dict(event))
    assert masked["event"] == "sent to *******4567, call +7 916 not masked"
    assert masked["phone"] == "*******4567"
    assert masked["nested"] == {"phones": ["*******2233", "x*******2233y"], "count": 12345678901}
    assert masked["api_token"] == masked["Authorization"] == masked["password"] == masked["provider_token"] == "***"
    assert masked["headers"] == {"authorization": "***", "accept": "*/*"}
    assert masked["note"] == "got header Bearer *** in postgresql://user:***@host/db"
    assert masked["message_id"] == 42
    assert masked["latency_ms"] == 1.5
    assert masked["longer"] == "179161234567"


def test_masking_covers_library_loggers_and_exceptions(settings: Settings) -> None:
    import logging

    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    logging.getLogger("some.library").info("connecting with token for 79161234567")
    try:
        raise ValueError("duplicate key (phone)=(79161234567)")
    except ValueError:
        structlog.get_logger("test").exception("failed", authorization="Bearer abc")
    output = stream.getvalue()
    assert "79161234567" not in output
    assert "*******4567" in output
    assert "Bearer abc" not in output
    lines = parse(output.splitlines())
    assert lines[-1]["authorization"] == "***"
    assert "ValueError" in lines[-1]["exception"]


def _procrastinate_line(level: int, message: str, **extra: Any) -> None:
    logging.getLogger("procrastinate.worker").log(level, message, extra=extra)


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_periodic_job_chatter_goes_to_debug_and_the_rest_stays(settings: Settings, log_level: str) -> None:
    stream = io.StringIO()
    configure_logging(replace(settings, log_level=log_level, log_json=True), stream=stream)
    periodic = {"task_name": "fold_counters", "task_kwargs": {"timestamp": 1_790_000_000}}
    sending = {"task_name": "send_messages", "task_kwargs": {"mailing_id": 1, "plan_version": 1}}
    _procrastinate_line(logging.INFO, "Starting job fold_counters[1]", action="start_job", job=periodic)
    _procrastinate_line(logging.INFO, "Periodic job deferred", action="periodic_task_deferred", job=periodic)
    _procrastinate_line(logging.INFO, "Starting job send_messages[2]", action="start_job", job=sending)
    _procrastinate_line(
        logging.ERROR, "Job fold_counters[3] ended with status: Error", action="job_error", job=periodic
    )
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    shown = [(line["event"], line["level"]) for line in lines if line.get("logger", "").startswith("procrastinate")]
    chatter = [("Starting job fold_counters[1]", "debug"), ("Periodic job deferred", "debug")]
    assert shown == [
        *(chatter if log_level == "DEBUG" else []),
        ("Starting job send_messages[2]", "info"),
        ("Job fold_counters[3] ended with status: Error", "error"),
    ]
