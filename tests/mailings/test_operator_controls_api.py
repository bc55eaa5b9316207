"""Pause, resume and retry as the API sees them (no worker): statuses, refusals naming the field,
and nothing changed by a refused request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import MAILINGS, Api, add_clients
from tests.mailings.test_mailings_api import MISSING_ID, create, later
from tests.problems import assert_problem


async def _due_mailing(client: Api, **overrides: Any) -> dict[str, Any]:
    return await create(client, start_at=later(hours=-2).isoformat(), end_at=later(hours=1).isoformat(), **overrides)


async def _ended_mailing(client: Api) -> dict[str, Any]:
    return await create(client, start_at=later(hours=-2).isoformat(), end_at=later(hours=-1).isoformat())


async def _messages(db: AsyncSession, mailing_id: int, statuses: list[str]) -> None:
    """One message per status, each for a client of its own, as if the mailing had been sent."""
    await db.execute(
        text(
            """
            INSERT INTO messages (mailing_id, client_id, status, attempts, last_error, sent_at)
            SELECT :mailing_id, c.id, s.status, 1,
                   CASE WHEN s.status <> 'sent' THEN 'HTTP 400: no' END,
                   CASE WHEN s.status = 'sent' THEN now() END
            FROM unnest(CAST(:statuses AS text[])) WITH ORDINALITY AS s(status, n)
            JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM clients) c ON c.n = s.n
            """
        ),
        {"mailing_id": mailing_id, "statuses": statuses},
    )
    await db.commit()


async def _statuses(db: AsyncSession, mailing_id: int) -> list[tuple[str, int, str | None]]:
    rows = await db.execute(
        text("SELECT status, attempts, last_error FROM messages WHERE mailing_id = :id ORDER BY id"),
        {"id": mailing_id},
    )
    result = [(r.status, r.attempts, r.last_error) for r in rows]
    await db.rollback()
    return result


async def _plan_jobs(db: AsyncSession, mailing_id: int) -> list[int]:
    rows = await db.execute(
        text(
            "SELECT (args->>'plan_version')::int FROM procrastinate_jobs"
            " WHERE task_name = 'delivery:plan_mailing' AND (args->>'mailing_id')::int = :id ORDER BY id"
        ),
        {"id": mailing_id},
    )
    versions = [v for (v,) in rows]
    await db.rollback()
    return versions


# --- pause and resume --------------------------------------------------------------------------------------------


async def test_pause_then_resume_a_scheduled_mailing(client: Api, db: AsyncSession) -> None:
    created = await create(client)
    url = f"{MAILINGS}/{created['id']}"

    paused = (await client.post(f"{url}/pause")).json()
    assert paused["status"] == "paused"
    paused_at = dt.datetime.fromisoformat(paused["paused_at"])
    assert abs(dt.datetime.now(dt.UTC) - paused_at) < dt.timedelta(minutes=1)
    assert (await client.get(url)).json() == paused
    # Pausing again changes nothing.
    again = await client.post(f"{url}/pause")
    assert again.status_code == 200
    assert again.json() == paused

    resumed = await client.post(f"{url}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "scheduled"
    assert resumed.json()["paused_at"] is None
    # The resume plans the mailing again, under a new version.
    assert await _plan_jobs(db, created["id"]) == [1, 2]
    # Resuming what is not paused changes nothing, and plans nothing.
    assert (await client.post(f"{url}/resume")).json() == resumed.json()
    assert await _plan_jobs(db, created["id"]) == [1, 2]


async def test_a_paused_mailing_reads_paused_in_every_list(client: Api) -> None:
    created = await _due_mailing(client)
    await client.post(f"{MAILINGS}/{created['id']}/pause")

    listed = (await client.get(MAILINGS)).json()["items"]
    assert [m["status"] for m in listed] == ["paused"]
    stats = (await client.get(f"{MAILINGS}/{created['id']}/stats")).json()
    assert stats["mailing"]["status"] == "paused"


async def test_pause_or_resume_of_a_finished_mailing_is_a_conflict_and_changes_nothing(client: Api) -> None:
    ended = await _ended_mailing(client)
    url = f"{MAILINGS}/{ended['id']}"

    for action in ("pause", "resume"):
        body = assert_problem(await client.post(f"{url}/{action}"), 409, "status")
        assert "finished" in body["detail"]
    assert (await client.get(url)).json() == ended


@pytest.mark.parametrize("action", ["pause", "resume", "retry"])
async def test_controls_of_an_unknown_or_invalid_id(client: Api, action: str) -> None:
    body = {"statuses": ["failed"]} if action == "retry" else None
    assert_problem(await client.post(f"{MAILINGS}/{MISSING_ID}/{action}", json=body), 404)
    assert_problem(await client.post(f"{MAILINGS}/0/{action}", json=body), 400, "mailing_id")


@pytest.mark.parametrize("action", ["pause", "resume", "retry"])
async def test_controls_need_a_token(client: Api, action: str) -> None:
    created = await create(client)
    response = await client.post(
        f"{MAILINGS}/{created['id']}/{action}", json={"statuses": ["failed"]}, headers={"Authorization": ""}
    )
    assert_problem(response, 401)
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json() == created


# --- retry -------------------------------------------------------------------------------------------------------


async def test_retry_puts_only_the_asked_statuses_back_to_pending(client: Api, db: AsyncSession) -> None:
    await add_clients(client, 5)
    mailing = await _due_mailing(client)
    await _messages(db, mailing["id"], ["sent", "failed", "expired", "cancelled", "failed"])

    response = await client.post(f"{MAILINGS}/{mailing['id']}/retry", json={"statuses": ["failed"]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requeued"] == 2
    assert body["mailing"]["id"] == mailing["id"]
    assert body["mailing"]["end_at"] == mailing["end_at"]
    assert await _statuses(db, mailing["id"]) == [
        ("sent", 1, None),
        ("pending", 1, "HTTP 400: no"),
        ("expired", 1, "HTTP 400: no"),
        ("cancelled", 1, "HTTP 400: no"),
        ("pending", 1, "HTTP 400: no"),
    ]
    assert await _plan_jobs(db, mailing["id"]) == [1, 2]


async def test_retry_of_an_ended_mailing_moves_its_end(client: Api, db: AsyncSession) -> None:
    await add_clients(client, 2)
    ended = await _ended_mailing(client)
    await _messages(db, ended["id"], ["expired", "failed"])
    new_end = later(hours=3)

    response = await client.post(
        f"{MAILINGS}/{ended['id']}/retry", json={"statuses": ["failed", "expired"], "end_at": new_end.isoformat()}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["requeued"] == 2
    assert dt.datetime.fromisoformat(body["mailing"]["end_at"]) == new_end
    assert body["mailing"]["status"] == "running"
    assert [s for s, _, _ in await _statuses(db, ended["id"])] == ["pending", "pending"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"statuses": ["sent"]}, "statuses[0]", id="sent"),
        pytest.param({"statuses": ["failed", "cancelled"]}, "statuses[1]", id="cancelled"),
        pytest.param({"statuses": ["pending"]}, "statuses[0]", id="pending"),
        pytest.param({"statuses": []}, "statuses", id="empty"),
        pytest.param({}, "statuses", id="missing"),
        pytest.param({"statuses": "failed"}, "statuses", id="not-a-list"),
        pytest.param({"statuses": ["failed"], "end_at": "2020-01-01T00:00:00+00:00"}, "end_at", id="end-past"),
        pytest.param({"statuses": ["failed"], "end_at": "2099-01-01T00:00:00"}, "end_at", id="end-naive"),
        pytest.param({"statuses": ["failed"], "end_at": "soon"}, "end_at", id="end-not-a-time"),
        pytest.param({"statuses": ["failed"], "colour": "red"}, "colour", id="unknown-field"),
    ],
)
async def test_retry_refuses_bad_input_and_changes_nothing(
    client: Api, db: AsyncSession, body: dict[str, Any], field: str
) -> None:
    await add_clients(client, 4)
    mailing = await _due_mailing(client)
    await _messages(db, mailing["id"], ["sent", "failed", "expired", "cancelled"])
    before = await _statuses(db, mailing["id"])

    assert_problem(await client.post(f"{MAILINGS}/{mailing['id']}/retry", json=body), 400, field)

    assert await _statuses(db, mailing["id"]) == before
    assert (await client.get(f"{MAILINGS}/{mailing['id']}")).json() == mailing
    assert await _plan_jobs(db, mailing["id"]) == [1]


async def test_retry_of_an_ended_mailing_needs_a_new_end(client: Api, db: AsyncSession) -> None:
    await add_clients(client, 1)
    ended = await _ended_mailing(client)
    await _messages(db, ended["id"], ["expired"])

    body = assert_problem(
        await client.post(f"{MAILINGS}/{ended['id']}/retry", json={"statuses": ["expired"]}), 400, "end_at"
    )

    assert "required" in body["errors"][0]["message"]
    assert await _statuses(db, ended["id"]) == [("expired", 1, "HTTP 400: no")]


async def test_retry_end_before_a_future_start_is_refused(client: Api) -> None:
    scheduled = await create(client, start_at=later(days=30).isoformat(), end_at=later(days=31).isoformat())

    body = {"statuses": ["failed"], "end_at": later(days=2).isoformat()}
    problem = assert_problem(await client.post(f"{MAILINGS}/{scheduled['id']}/retry", json=body), 400, "end_at")

    assert "start_at" in problem["errors"][0]["message"]
    assert (await client.get(f"{MAILINGS}/{scheduled['id']}")).json() == scheduled


async def test_mailing_reads_carry_the_text_encoding_and_parts(client: Api) -> None:
    gsm = await create(client, text="a" * 161)
    cyrillic = await create(client, text="Привет! " * 10)
    emoji = await create(client, text="😀" * 35)

    assert (gsm["encoding"], gsm["parts"]) == ("GSM-7", 2)
    assert (cyrillic["encoding"], cyrillic["parts"]) == ("UCS-2", 2)
    assert (emoji["encoding"], emoji["parts"]) == ("UCS-2", 1)
    patched = (await client.patch(f"{MAILINGS}/{gsm['id']}", json={"text": "short"})).json()
    assert (patched["encoding"], patched["parts"]) == ("GSM-7", 1)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("post", "/api/v1/mailings/{mailing_id}/pause", {"200", "400", "401", "404", "409"}),
        ("post", "/api/v1/mailings/{mailing_id}/resume", {"200", "400", "401", "404", "409"}),
        ("post", "/api/v1/mailings/{mailing_id}/retry", {"200", "400", "401", "404", "409"}),
        ("post", "/api/v1/mailings/{mailing_id}/test", {"200", "400", "401", "404", "409", "503"}),
        ("post", "/api/v1/mailings/preview", {"200", "400", "401"}),
        ("get", "/api/v1/mailings/{mailing_id}/preview", {"200", "400", "401", "404"}),
    ],
)
async def test_openapi_documents_every_control_route(client: Api, method: str, path: str, codes: set[str]) -> None:
    schema = (await client.get("/docs/openapi.json")).json()
    operation = schema["paths"][path][method]
    assert set(operation["responses"]) == codes
    assert operation["summary"]
    for code in codes - {"200"}:
        content = operation["responses"][code]["content"]
        assert "application/problem+json" in content, (path, code)
    if method == "post" and not path.endswith(("pause", "resume")):
        assert operation["requestBody"]["required"] is True
