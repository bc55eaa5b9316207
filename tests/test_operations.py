"""Probes and API documentation: what an orchestrator and a newcomer rely on."""

from __future__ import annotations

from dataclasses import replace

import psycopg
from litestar.testing import AsyncTestClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from tests.api import Api

# Port 1 is never a PostgreSQL server: the connection is refused at once instead of timing out.
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/nope"


async def test_health_says_ok(client: Api) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_is_current(client: Api) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "current"}


async def test_not_ready_when_the_database_is_unreachable(settings: Settings) -> None:
    app = create_app(replace(settings, database_url=UNREACHABLE_DATABASE))

    async with AsyncTestClient(app=app) as api:
        ready = await api.get("/ready")
        health = await api.get("/health")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable", "migrations": "unknown"}
    # Liveness must not depend on the database, or an outage would get every replica restarted.
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


async def test_not_ready_once_the_database_goes_away(client: Api, pg_server_url: str, database_url: str) -> None:
    assert (await client.get("/ready")).status_code == 200

    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{make_url(database_url).database}" WITH (FORCE)')
    ready = await client.get("/ready")
    health = await client.get("/health")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "unreachable", "migrations": "unknown"}
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


async def test_not_ready_when_migrations_are_pending(client: Api, db: AsyncSession) -> None:
    await db.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    await db.commit()

    response = await client.get("/ready")

    assert response.status_code == 503
    body = response.json()
    assert body == {"status": "unavailable", "database": "ok", "migrations": "pending"}


async def test_docs_serve_swagger_ui(client: Api) -> None:
    response = await client.get("/docs/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.text
    assert "/api/v1/clients/bulk" in response.text


async def test_openapi_schema_lists_the_api(client: Api) -> None:
    response = await client.get("/docs/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "notification"
    paths = schema["paths"]
    for path in ("/api/v1/clients", "/api/v1/clients/bulk", "/api/v1/mailings", "/api/v1/mailings/{mailing_id}"):
        assert path in paths, sorted(paths)
    assert {"get", "post"} <= set(paths["/api/v1/clients"])
    assert "post" in paths["/api/v1/clients/bulk"]
    assert {"get", "patch", "put", "delete"} <= set(paths["/api/v1/mailings/{mailing_id}"])
    assert {"/health", "/ready"} <= set(paths)


async def test_openapi_documents_errors_as_problem_details(client: Api) -> None:
    create = (await client.get("/docs/openapi.json")).json()["paths"]["/api/v1/clients"]["post"]

    assert "application/problem+json" in create["responses"]["400"]["content"]
    assert "409" in create["responses"]
