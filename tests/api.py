"""What the tests that drive the API share: the client type and token, request bodies, creating through
the API, counting rows beside it and the database's clock. The problem-details check is tests/problems.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import msgspec
import psycopg
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import ClientCreateFactory

Api = AsyncTestClient[Litestar]
API_TOKEN = "test-token-0123456789abcdef0123456789"

CLIENTS = "/api/v1/clients"
MAILINGS = "/api/v1/mailings"
MESSAGES = "/api/v1/messages"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def client_body(**overrides: Any) -> dict[str, Any]:
    """A valid new client, made up by the factory; fields left to their defaults are omitted."""
    body = {k: v for k, v in msgspec.to_builtins(ClientCreateFactory.build()).items() if v is not None}
    body.update(overrides)
    return body


async def create_client(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await api.post(CLIENTS, json=client_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def add_clients(api: Api, count: int, **fields: Any) -> list[dict[str, Any]]:
    """``count`` clients in one bulk import, each with ``fields``."""
    response = await api.post(f"{CLIENTS}/bulk", json=[client_body(**fields) for _ in range(count)])
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()
    return created


async def create_mailing(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A mailing due now (begun a minute ago, ending in an hour) unless ``fields`` say otherwise."""
    now = utc_now()
    body = {
        "text": "Winter sale",
        "kind": "service",
        "start_at": (now - dt.timedelta(minutes=1)).isoformat(),
        "end_at": (now + dt.timedelta(hours=1)).isoformat(),
        **fields,
    }
    response = await api.post(MAILINGS, json=body)
    assert response.status_code == 201, response.text
    mailing: dict[str, Any] = response.json()
    return mailing


async def mailing_stats(api: Api, mailing_id: int, **params: Any) -> dict[str, Any]:
    """``GET /mailings/{id}/stats`` with up to 1,000 of its messages."""
    response = await api.get(f"{MAILINGS}/{mailing_id}/stats", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


async def count_rows(db: AsyncSession, table: str) -> int:
    total = await db.scalar(text(f"SELECT count(*) FROM {table}"))
    # End the read transaction so that no snapshot or lock outlives the check.
    await db.rollback()
    return int(total or 0)


async def database_now(db: AsyncSession | str) -> dt.datetime:
    """The database's clock, the one every deadline of the service is measured on; through a
    session, or on a connection of its own to the database ``db`` names."""
    if isinstance(db, str):
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
            now = (await (await conn.execute("SELECT now()")).fetchone() or [None])[0]
    else:
        now = await db.scalar(text("SELECT now()"))
        await db.rollback()
    assert isinstance(now, dt.datetime)
    return now
