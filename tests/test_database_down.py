"""While the database cannot be reached, the API answers 503 with Retry-After (and the console a 503
page), never a 500: a real server address with nothing listening, and a real database whose
connections are cut and which refuses new ones."""

from __future__ import annotations

import socket
from dataclasses import replace

import psycopg
from litestar.testing import AsyncTestClient

from notification.app import create_app
from notification.config import Settings
from tests.conftest import API_TOKEN

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _nothing_listening() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_api_answers_503_while_the_database_is_unreachable(settings: Settings) -> None:
    away = replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{_nothing_listening()}/notification")
    async with AsyncTestClient(app=create_app(away)) as api:
        for path in ["/api/v1/clients", "/api/v1/mailings"]:
            answer = await api.get(path, headers=AUTH)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["retry-after"] == "5"
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "127.0.0.1" not in answer.text


async def test_the_api_answers_503_when_the_database_stops_under_it(settings: Settings, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    async with AsyncTestClient(app=create_app(settings)) as api:
        assert (await api.get("/api/v1/clients", headers=AUTH)).status_code == 200
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            answer = await api.get("/api/v1/clients", headers=AUTH)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "5"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert (await api.get("/api/v1/clients", headers=AUTH)).status_code == 200
