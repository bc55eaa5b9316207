"""The suppression list through the API: added, listed, filtered, deleted and audited; its CSV exported
and imported back unchanged; a bad file refused whole, naming its line."""

from __future__ import annotations

import csv
import io

from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import Api, count_rows, create_client, create_mailing
from tests.delivery.observe import rows
from tests.problems import assert_problem

SUPPRESSIONS = "/api/v1/suppressions"
CSV = {"Content-Type": "text/csv"}


async def test_a_number_is_added_listed_filtered_and_deleted_each_change_audited(client: Api, db: AsyncSession) -> None:
    added = await client.post(SUPPRESSIONS, json={"phone": "79160000001", "reason": "complaint", "source": "t-1"})
    assert added.status_code == 201, added.text
    assert added.json()["created_by"].startswith("api-token:")
    await client.post(SUPPRESSIONS, json={"phone": "79260000002", "reason": "operator_request"})

    assert_problem(await client.post(SUPPRESSIONS, json={"phone": "79160000001", "reason": "complaint"}), 409, "phone")
    assert_problem(await client.post(SUPPRESSIONS, json={"phone": "89160000001", "reason": "complaint"}), 400, "phone")
    assert_problem(await client.post(SUPPRESSIONS, json={"phone": "79160000003", "reason": "whim"}), 400, "reason")
    listed = (await client.get(SUPPRESSIONS, params={"reason": "complaint"})).json()
    assert [s["phone"] for s in listed["items"]] == ["79160000001"]
    assert (await client.get(SUPPRESSIONS, params={"phone_prefix": "7926"})).json()["total"] == 1
    assert (await client.get(f"{SUPPRESSIONS}/79160000001")).json()["reason"] == "complaint"

    assert (await client.delete(f"{SUPPRESSIONS}/79160000001")).status_code == 204
    assert_problem(await client.delete(f"{SUPPRESSIONS}/79160000001"), 404)
    audited = await rows_of(db, "SELECT action FROM audit_log WHERE entity = 'suppression' ORDER BY id")
    assert audited == ["create", "create", "delete"]


async def rows_of(db: AsyncSession, statement: str) -> list[object]:
    from sqlalchemy import text

    found = [row[0] for row in await db.execute(text(statement))]
    await db.rollback()
    return found


async def test_adding_a_number_cancels_its_pending_messages_with_their_reason(client: Api, settings: object) -> None:
    kept = await create_client(client, phone="79160000010")
    await create_client(client, phone="79160000011")
    mailing = await create_mailing(client, kind="service", text="later")
    db = settings.psycopg_conninfo  # type: ignore[attr-defined]
    # Planned by hand (no worker here): the messages as planning writes them, pending.
    await rows(
        db,
        "INSERT INTO messages (mailing_id, client_id) SELECT %(m)s, id FROM clients RETURNING id",
        {"m": mailing["id"]},
    )
    response = await client.post(SUPPRESSIONS, json={"phone": "79160000011", "reason": "complaint"})
    assert response.status_code == 201
    found = await rows(
        db,
        "SELECT client_id, status, error_kind FROM messages WHERE mailing_id = %(m)s ORDER BY id",
        {"m": mailing["id"]},
    )
    assert [(status, kind) for client_id, status, kind in found if client_id == kept["id"]] == [("pending", None)]
    assert [(status, kind) for client_id, status, kind in found if client_id != kept["id"]] == [
        ("cancelled", "suppressed")
    ]


async def test_the_csv_export_imports_back_unchanged(client: Api, db: AsyncSession) -> None:
    lines = ["phone,reason,source"] + [
        f"7916{i:07d},{reason},batch {i}"
        for i, reason in enumerate(["stop_word", "operator_request", "complaint", "invalid_number"] * 25)
    ]
    lines.append("79990000000,,")  # the reason defaults to operator_request
    first = await client.post(f"{SUPPRESSIONS}/import", content="\n".join(lines).encode(), headers=CSV)
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 101, "already_listed": 0}
    exported = (await client.get(f"{SUPPRESSIONS}/export")).text
    assert exported.splitlines()[0] == "phone,reason,source,created_at,created_by"
    assert "79990000000,operator_request,," in exported

    for row in csv.DictReader(io.StringIO(exported)):
        assert (await client.delete(f"{SUPPRESSIONS}/{row['phone']}")).status_code == 204
    assert await count_rows(db, "suppressions") == 0
    again = await client.post(f"{SUPPRESSIONS}/import", content=exported.encode(), headers=CSV)
    assert again.json() == {"added": 101, "already_listed": 0}
    repeated = await client.post(f"{SUPPRESSIONS}/import", content=exported.encode(), headers=CSV)
    assert repeated.json() == {"added": 0, "already_listed": 101}

    def listed(text: str) -> list[tuple[str, str, str]]:
        return [(r["phone"], r["reason"], r["source"]) for r in csv.DictReader(io.StringIO(text))]

    written = listed("\n".join(lines).replace("79990000000,,", "79990000000,operator_request,"))
    assert listed((await client.get(f"{SUPPRESSIONS}/export")).text) == sorted(written)


async def test_a_bad_line_refuses_the_whole_file_naming_the_line(client: Api, db: AsyncSession) -> None:
    cases = [
        ("phone,reason\n79160000001,complaint\n7916,complaint\n", "line 3"),
        ("phone,reason\n79160000001,complaint\n79160000002,whim\n", "line 3"),
        ("phone,reason\n79160000001,complaint\n79160000001,complaint\n", "line 3"),
        ("phone,reason\n79160000001\n", "line 2"),
        ("number\n79160000001\n", "file"),
        ("phone\n", "file"),
    ]
    for body, field in cases:
        assert_problem(await client.post(f"{SUPPRESSIONS}/import", content=body.encode(), headers=CSV), 400, field)
    assert await count_rows(db, "suppressions") == 0


async def test_a_test_send_to_a_suppressed_number_is_refused_and_sends_nothing(
    client: Api, db: AsyncSession, fake_provider: object
) -> None:
    mailing = await create_mailing(client, kind="service")
    await client.post(SUPPRESSIONS, json={"phone": "79160000020", "reason": "stop_word"})
    refused = await client.post(f"/api/v1/mailings/{mailing['id']}/test", json={"phone": "79160000020"})
    assert_problem(refused, 409, "phone")
    assert await count_rows(db, "test_sends") == 0


async def test_consent_travels_through_the_csv_import_and_the_api(console: object, db: AsyncSession) -> None:
    from tests.console_client import Console

    assert isinstance(console, Console)
    content = (
        b"phone,timezone,consent_given_at,consent_source,consent_revoked_at,city\n"
        b"79161230001,Europe/Moscow,2026-11-01T10:00:00+03:00,web form,,Kazan\n"
        b"79161230002,Europe/Moscow,2026-11-01T10:00:00+03:00,shop,2026-11-20T09:00:00Z,\n"
        b"79161230003,Europe/Moscow,,,,\n"
    )
    response = await console.upload("/admin/clients/import", content)
    assert response.status_code in {200, 303}, response.text
    found = await rows_of(
        db,
        "SELECT phone || ' ' || coalesce(to_char(consent_given_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '-')"
        " || ' ' || coalesce(consent_source, '-') || ' ' || (consent_revoked_at IS NOT NULL)::text"
        " || ' ' || coalesce(attributes ->> 'city', '-') FROM clients ORDER BY phone",
    )
    assert found == [
        "79161230001 2026-11-01 07:00 web form false Kazan",
        "79161230002 2026-11-01 07:00 shop true -",
        "79161230003 - - false -",
    ]
