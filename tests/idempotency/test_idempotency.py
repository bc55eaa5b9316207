"""Idempotency-Key on POST /mailings and POST /clients/bulk: a retried create answers the first
answer and creates nothing; the same key with another body is a conflict."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.idempotency.store import FORGET_EXPIRED, KEPT_HOURS
from tests.api import API_TOKEN, MAILINGS, Api, count_rows
from tests.delivery.observe import backends_waiting_for_a_lock
from tests.factories import ClientCreateFactory
from tests.mailings.test_mailings_api import mailing_body
from tests.problems import assert_problem
from tests.waiting import wait_for

BULK = "/api/v1/clients/bulk"


async def _plan_jobs(db: AsyncSession) -> int:
    total = await db.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'delivery:plan_mailing'"))
    await db.rollback()
    return int(total or 0)


def _clients(count: int) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(ClientCreateFactory.build()) for _ in range(count)]


async def test_a_repeated_create_with_one_key_creates_one_mailing(client: Api, db: AsyncSession) -> None:
    body = mailing_body()
    headers = {"Idempotency-Key": "3f0c2a4e-create-once"}

    first = await client.post(MAILINGS, json=body, headers=headers)
    second = await client.post(MAILINGS, json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_rows(db, "mailings") == 1
    assert await _plan_jobs(db) == 1


async def test_two_creates_with_one_key_at_once_over_http_create_one_mailing(
    live_server: str, settings: Settings, db: AsyncSession
) -> None:
    """Both requests reach the key while a third transaction holds it, so that both are truly waiting at
    once when it lets go; the server runs in a thread of its own and answers them side by side."""
    conninfo = settings.psycopg_conninfo
    body = mailing_body(text="sent twice at once")
    key = "double-click"
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key}
    async with (
        httpx.AsyncClient(base_url=live_server, headers=headers, timeout=30) as http,
        await psycopg.AsyncConnection.connect(conninfo) as holder,
    ):
        await holder.execute(
            "INSERT INTO idempotency_keys (route, key, request_digest) VALUES ('POST /mailings', %(key)s, '')",
            {"key": key},
        )
        posts = [asyncio.create_task(http.post(MAILINGS, json=body)) for _ in range(2)]
        await wait_for(lambda: backends_waiting_for_a_lock(conninfo), lambda n: n == 2, timeout_s=15)
        await holder.rollback()
        answers = await asyncio.gather(*posts)

    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    assert await count_rows(db, "mailings") == 1
    assert await _plan_jobs(db) == 1
    assert await count_rows(db, "audit_log") == 1


async def test_the_same_body_spelled_differently_is_the_same_request(client: Api, db: AsyncSession) -> None:
    body = mailing_body()
    headers = {"Idempotency-Key": "spelling"}
    spelled = {"filter": {"tags": [], "operator_codes": []}, **dict(reversed(list(body.items())))}

    first = await client.post(MAILINGS, json=body, headers=headers)
    second = await client.post(MAILINGS, json=spelled, headers=headers)

    assert second.json() == first.json()
    assert await count_rows(db, "mailings") == 1


async def test_the_same_key_with_another_body_is_a_conflict(client: Api, db: AsyncSession) -> None:
    headers = {"Idempotency-Key": "reused"}
    assert (await client.post(MAILINGS, json=mailing_body(text="first"), headers=headers)).status_code == 201

    problem = assert_problem(
        await client.post(MAILINGS, json=mailing_body(text="second"), headers=headers), 409, "Idempotency-Key"
    )

    assert "different request body" in problem["detail"]
    assert await count_rows(db, "mailings") == 1


async def test_without_a_key_every_create_creates(client: Api, db: AsyncSession) -> None:
    body = mailing_body()
    await client.post(MAILINGS, json=body)
    await client.post(MAILINGS, json=body)

    assert await count_rows(db, "mailings") == 2


async def test_a_refused_create_keeps_no_key(client: Api, db: AsyncSession) -> None:
    headers = {"Idempotency-Key": "first-try-was-wrong"}
    wrong = mailing_body(text="   ")
    assert_problem(await client.post(MAILINGS, json=wrong, headers=headers), 400, "text")
    assert await count_rows(db, "idempotency_keys") == 0

    assert (await client.post(MAILINGS, json=mailing_body(), headers=headers)).status_code == 201
    assert await count_rows(db, "mailings") == 1


async def test_a_key_is_free_again_after_its_retention(client: Api, db: AsyncSession, settings: Settings) -> None:
    headers = {"Idempotency-Key": "yesterday"}
    assert (await client.post(MAILINGS, json=mailing_body(text="old"), headers=headers)).status_code == 201
    await db.execute(text(f"UPDATE idempotency_keys SET created_at = now() - interval '{KEPT_HOURS + 1} hours'"))
    await db.commit()

    again = await client.post(MAILINGS, json=mailing_body(text="new"), headers=headers)

    assert again.status_code == 201
    assert again.json()["text"] == "new"
    assert await count_rows(db, "mailings") == 2
    # The worker's hourly sweep forgets what is past the retention, nothing else.
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        assert (await conn.execute(FORGET_EXPIRED, {"kept_hours": KEPT_HOURS})).rowcount == 0
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '2 days'")
        assert (await conn.execute(FORGET_EXPIRED, {"kept_hours": KEPT_HOURS})).rowcount == 1


async def test_a_repeated_bulk_import_with_one_key_imports_once(client: Api, db: AsyncSession) -> None:
    rows = _clients(3)
    headers = {"Idempotency-Key": "import-2026-12-02"}

    first = await client.post(BULK, json=rows, headers=headers)
    second = await client.post(BULK, json=rows, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert [c["phone"] for c in second.json()] == [r["phone"] for r in rows]
    assert await count_rows(db, "clients") == 3
    # Without the key the same rows are duplicates of existing phones.
    assert_problem(await client.post(BULK, json=rows), 409, "[0].phone")


async def test_keys_of_the_two_routes_are_apart(client: Api, db: AsyncSession) -> None:
    headers = {"Idempotency-Key": "shared"}
    assert (await client.post(BULK, json=_clients(1), headers=headers)).status_code == 201
    assert (await client.post(MAILINGS, json=mailing_body(), headers=headers)).status_code == 201
    assert await count_rows(db, "mailings") == 1


async def test_bulk_with_a_reused_key_and_other_rows_is_a_conflict(client: Api, db: AsyncSession) -> None:
    headers = {"Idempotency-Key": "import"}
    assert (await client.post(BULK, json=_clients(2), headers=headers)).status_code == 201

    assert_problem(await client.post(BULK, json=_clients(2), headers=headers), 409, "Idempotency-Key")
    assert await count_rows(db, "clients") == 2


@pytest.mark.parametrize("path", [MAILINGS, BULK])
async def test_a_key_too_long_is_refused_and_nothing_created(client: Api, db: AsyncSession, path: str) -> None:
    body: Any = mailing_body() if path == MAILINGS else _clients(1)

    assert_problem(await client.post(path, json=body, headers={"Idempotency-Key": "k" * 256}), 400, "Idempotency-Key")

    assert await count_rows(db, "mailings") == 0
    assert await count_rows(db, "clients") == 0
    assert await count_rows(db, "idempotency_keys") == 0


async def test_openapi_documents_the_header_and_the_conflict(client: Api) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    for path in ("/api/v1/mailings", "/api/v1/clients/bulk"):
        operation = schema["paths"][path]["post"]
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert {"201", "400", "401", "409"} <= set(operation["responses"])
