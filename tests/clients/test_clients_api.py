"""The client directory API: CRUD, pagination, filters, bulk import and the problem details of every refusal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import CLIENTS, Api, client_body, count_rows, create_client
from tests.factories import MailingFactory
from tests.problems import assert_problem

BULK = f"{CLIENTS}/bulk"
MAX_BULK_ROWS = 10_000
MISSING_ID = 987_654


# --- create and read -------------------------------------------------------------------------------------------


async def test_create_returns_the_stored_client(client: Api) -> None:
    response = await client.post(CLIENTS, json={"phone": "79161234567", "timezone": "Europe/Moscow", "tag": "vip"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["id"] >= 1
    assert body["phone"] == "79161234567"
    assert body["operator_code"] == "916"
    assert body["tag"] == "vip"
    assert body["timezone"] == "Europe/Moscow"
    created_at = dt.datetime.fromisoformat(body["created_at"])
    assert created_at.tzinfo is not None
    assert abs(dt.datetime.now(dt.UTC) - created_at) < dt.timedelta(minutes=1)
    assert dt.datetime.fromisoformat(body["updated_at"]) >= created_at


async def test_create_keeps_an_explicit_operator_code(client: Api) -> None:
    # A number ported to another operator keeps its prefix, so the prefix cannot always be trusted.
    body = await create_client(client, phone="79161234567", operator_code="903")

    assert body["operator_code"] == "903"
    assert (await client.get(f"{CLIENTS}/{body['id']}")).json()["operator_code"] == "903"


async def test_create_defaults_tag_to_empty(client: Api) -> None:
    response = await client.post(CLIENTS, json={"phone": "79031234567", "timezone": "UTC"})

    assert response.status_code == 201, response.text
    assert response.json()["tag"] == ""
    assert response.json()["operator_code"] == "903"


async def test_get_returns_what_create_returned(client: Api) -> None:
    created = await create_client(client)

    fetched = await client.get(f"{CLIENTS}/{created['id']}")

    assert fetched.status_code == 200
    assert fetched.json() == created


# --- list --------------------------------------------------------------------------------------------------------


async def test_list_pages_by_id_and_counts_every_row(client: Api) -> None:
    ids = [(await create_client(client))["id"] for _ in range(5)]

    page = await client.get(CLIENTS, params={"limit": 2, "offset": 1})

    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert body["limit"] == 2
    assert body["offset"] == 1
    assert [c["id"] for c in body["items"]] == ids[1:3]


async def test_list_defaults(client: Api) -> None:
    ids = [(await create_client(client))["id"] for _ in range(3)]

    first = (await client.get(CLIENTS)).json()

    assert first["limit"] == 50
    assert first["offset"] == 0
    assert first["total"] == 3
    assert [c["id"] for c in first["items"]] == ids


async def test_list_past_the_end_still_counts_every_row(client: Api) -> None:
    for _ in range(3):
        await create_client(client)

    beyond = (await client.get(CLIENTS, params={"offset": 10})).json()

    assert beyond == {"items": [], "total": 3, "limit": 50, "offset": 10}


async def test_list_filters_by_operator_code_and_tag(client: Api) -> None:
    mts_vip = await create_client(client, phone="79160000001", tag="vip")
    mts_plain = await create_client(client, phone="79160000002", tag="")
    beeline_vip = await create_client(client, phone="79030000003", tag="vip")
    await create_client(client, phone="79990000004", tag="new")

    by_operator = (await client.get(CLIENTS, params={"operator_code": "916"})).json()
    by_tag = (await client.get(CLIENTS, params={"tag": "vip"})).json()
    by_both = (await client.get(CLIENTS, params={"operator_code": "916", "tag": "vip"})).json()
    nobody = (await client.get(CLIENTS, params={"operator_code": "123"})).json()

    assert [c["id"] for c in by_operator["items"]] == [mts_vip["id"], mts_plain["id"]]
    assert by_operator["total"] == 2
    assert [c["id"] for c in by_tag["items"]] == [mts_vip["id"], beeline_vip["id"]]
    assert by_tag["total"] == 2
    assert [c["id"] for c in by_both["items"]] == [mts_vip["id"]]
    assert by_both["total"] == 1
    assert nobody == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_list_filter_total_ignores_the_page(client: Api) -> None:
    for i in range(4):
        await create_client(client, phone=f"7916000000{i}", tag="vip")
    await create_client(client, phone="79160000009", tag="other")

    body = (await client.get(CLIENTS, params={"tag": "vip", "limit": 1, "offset": 1})).json()

    assert body["total"] == 4
    assert len(body["items"]) == 1
    assert body["items"][0]["phone"] == "79160000001"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 100_000}, "limit", id="limit-too-big"),
        pytest.param({"offset": -1}, "offset", id="offset-negative"),
        pytest.param({"limit": "many"}, "limit", id="limit-not-a-number"),
    ],
)
async def test_list_refuses_bad_query_parameters(client: Api, params: dict[str, Any], field: str) -> None:
    assert_problem(await client.get(CLIENTS, params=params), 400, field)


async def test_list_refuses_a_malformed_operator_code_filter(client: Api) -> None:
    assert_problem(await client.get(CLIENTS, params={"operator_code": "91"}), 400, "operator_code")


# --- update and delete -----------------------------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(client: Api) -> None:
    created = await create_client(client, phone="79161234567", tag="new", timezone="Europe/Moscow")

    response = await client.patch(f"{CLIENTS}/{created['id']}", json={"tag": "vip"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tag"] == "vip"
    unchanged = ("id", "phone", "operator_code", "timezone", "created_at")
    assert {k: body[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert dt.datetime.fromisoformat(body["updated_at"]) >= dt.datetime.fromisoformat(created["updated_at"])
    assert (await client.get(f"{CLIENTS}/{created['id']}")).json() == body


async def test_patch_several_fields(client: Api) -> None:
    created = await create_client(client, phone="79161234567", timezone="Europe/Moscow")

    body = (
        await client.patch(
            f"{CLIENTS}/{created['id']}",
            json={"phone": "79031112233", "operator_code": "903", "timezone": "Asia/Vladivostok"},
        )
    ).json()

    assert body["phone"] == "79031112233"
    assert body["operator_code"] == "903"
    assert body["timezone"] == "Asia/Vladivostok"
    assert body["tag"] == created["tag"]


async def test_put_replaces_every_field(client: Api) -> None:
    created = await create_client(client, phone="79161234567", operator_code="999", tag="vip", timezone="Europe/Moscow")

    response = await client.put(f"{CLIENTS}/{created['id']}", json={"phone": "79031234567", "timezone": "UTC"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == created["id"]
    assert body["phone"] == "79031234567"
    # Omitted fields take their defaults, as on create, rather than keeping the old values.
    assert body["operator_code"] == "903"
    assert body["tag"] == ""
    assert body["timezone"] == "UTC"
    assert body["created_at"] == created["created_at"]
    assert (await client.get(f"{CLIENTS}/{created['id']}")).json() == body


async def test_put_keeps_its_own_phone(client: Api) -> None:
    created = await create_client(client, phone="79161234567")

    response = await client.put(
        f"{CLIENTS}/{created['id']}", json={"phone": "79161234567", "timezone": "UTC", "tag": "x"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["tag"] == "x"


async def test_delete_then_get_is_404(client: Api, db: AsyncSession) -> None:
    kept = await create_client(client)
    gone = await create_client(client)

    response = await client.delete(f"{CLIENTS}/{gone['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"{CLIENTS}/{gone['id']}"), 404)
    listed = (await client.get(CLIENTS)).json()
    assert [c["id"] for c in listed["items"]] == [kept["id"]]
    assert listed["total"] == 1
    assert await count_rows(db, "clients") == 1


async def test_delete_cancels_pending_messages_and_keeps_sent_ones(client: Api, db: AsyncSession) -> None:
    doomed = await create_client(client)
    bystander = await create_client(client)
    # Two mailings: a client has at most one message per mailing.
    first, second = MailingFactory.build(), MailingFactory.build()
    db.add_all([first, second])
    await db.flush()
    insert = text(
        "INSERT INTO messages (mailing_id, client_id, status, due_at) VALUES (:m, :c, :s, now()) RETURNING id"
    )
    pending_id = await db.scalar(insert, {"m": first.id, "c": doomed["id"], "s": "pending"})
    sent_id = await db.scalar(insert, {"m": second.id, "c": doomed["id"], "s": "sent"})
    bystander_id = await db.scalar(insert, {"m": first.id, "c": bystander["id"], "s": "pending"})
    await db.commit()

    assert (await client.delete(f"{CLIENTS}/{doomed['id']}")).status_code == 204

    rows = (await db.execute(text("SELECT id, status, client_id FROM messages ORDER BY id"))).all()
    await db.rollback()
    assert {row.id: (row.status, row.client_id) for row in rows} == {
        pending_id: ("cancelled", None),
        sent_id: ("sent", None),
        bystander_id: ("pending", bystander["id"]),
    }


async def test_a_client_deletion_cancels_as_a_re_plan_does(client: Api, db: AsyncSession) -> None:
    """Lease released, error kind and reason written: a cancellation looks the same whoever makes it."""
    doomed = await create_client(client)
    mailing = MailingFactory.build()
    db.add(mailing)
    await db.flush()
    message_id = await db.scalar(
        text(
            "INSERT INTO messages (mailing_id, client_id, status, due_at, leased_until, last_error, error_kind)"
            " VALUES (:m, :c, 'pending', now(), now() + interval '1 minute', 'HTTP 503', 'http_5xx') RETURNING id"
        ),
        {"m": mailing.id, "c": doomed["id"]},
    )
    await db.commit()

    assert (await client.delete(f"{CLIENTS}/{doomed['id']}")).status_code == 204

    row = (
        await db.execute(
            text("SELECT status, error_kind, last_error, leased_until FROM messages WHERE id = :id"), {"id": message_id}
        )
    ).one()
    await db.rollback()
    assert tuple(row) == ("cancelled", "cancelled", "client deleted", None)


# --- not found -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        pytest.param("GET", None, id="get"),
        pytest.param("PATCH", {"tag": "vip"}, id="patch"),
        pytest.param("PUT", {"phone": "79161234567", "timezone": "UTC"}, id="put"),
        pytest.param("DELETE", None, id="delete"),
    ],
)
async def test_missing_client_is_404(client: Api, db: AsyncSession, method: str, payload: Any) -> None:
    await create_client(client)

    response = await client.request(method, f"{CLIENTS}/{MISSING_ID}", json=payload)

    body = assert_problem(response, 404)
    assert str(MISSING_ID) in body["detail"]
    assert await count_rows(db, "clients") == 1


# --- conflicts ---------------------------------------------------------------------------------------------------


async def test_duplicate_phone_on_create_is_409(client: Api, db: AsyncSession) -> None:
    await create_client(client, phone="79161234567")

    response = await client.post(CLIENTS, json={"phone": "79161234567", "timezone": "UTC"})

    body = assert_problem(response, 409, "phone")
    assert "79161234567" in body["detail"]
    assert await count_rows(db, "clients") == 1


async def test_patch_to_an_existing_phone_is_409(client: Api) -> None:
    await create_client(client, phone="79161234567")
    other = await create_client(client, phone="79031234567")

    response = await client.patch(f"{CLIENTS}/{other['id']}", json={"phone": "79161234567"})

    assert_problem(response, 409, "phone")
    assert (await client.get(f"{CLIENTS}/{other['id']}")).json()["phone"] == "79031234567"


async def test_put_to_an_existing_phone_is_409(client: Api) -> None:
    await create_client(client, phone="79161234567")
    other = await create_client(client, phone="79031234567")

    response = await client.put(f"{CLIENTS}/{other['id']}", json={"phone": "79161234567", "timezone": "UTC"})

    assert_problem(response, 409, "phone")
    assert (await client.get(f"{CLIENTS}/{other['id']}")).json()["phone"] == "79031234567"


# --- invalid input -----------------------------------------------------------------------------------------------


INVALID_CLIENT_FIELDS = [
    pytest.param({"phone": "7916123"}, "phone", id="phone-too-short"),
    pytest.param({"phone": "791612345678"}, "phone", id="phone-too-long"),
    pytest.param({"phone": "89161234567"}, "phone", id="phone-starts-with-8"),
    pytest.param({"phone": "7916123456a"}, "phone", id="phone-letters"),
    pytest.param({"phone": "+79161234567"}, "phone", id="phone-plus"),
    pytest.param({"phone": 79161234567}, "phone", id="phone-as-number"),
    pytest.param({"operator_code": "91"}, "operator_code", id="operator-code-two-digits"),
    pytest.param({"operator_code": "9a6"}, "operator_code", id="operator-code-letter"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone-unknown"),
    pytest.param({"timezone": ""}, "timezone", id="timezone-empty"),
    pytest.param({"tag": "x" * 101}, "tag", id="tag-too-long"),
    pytest.param({"tag": 7}, "tag", id="tag-as-number"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_CLIENT_FIELDS)
async def test_create_refuses_invalid_fields(
    client: Api, db: AsyncSession, overrides: dict[str, Any], field: str
) -> None:
    response = await client.post(CLIENTS, json=client_body(**overrides))

    assert_problem(response, 400, field)
    assert await count_rows(db, "clients") == 0


async def test_create_accepts_the_longest_tag(client: Api) -> None:
    assert (await create_client(client, tag="x" * 100))["tag"] == "x" * 100


@pytest.mark.parametrize("missing", ["phone", "timezone"])
async def test_create_refuses_a_missing_required_field(client: Api, db: AsyncSession, missing: str) -> None:
    body = client_body()
    del body[missing]

    problem = assert_problem(await client.post(CLIENTS, json=body), 400)

    assert missing in problem["detail"]
    assert await count_rows(db, "clients") == 0


async def test_create_refuses_an_unknown_field(client: Api, db: AsyncSession) -> None:
    response = await client.post(CLIENTS, json=client_body(nickname="bob"))

    problem = assert_problem(response, 400)
    assert any("nickname" in f"{e['field']} {e['message']}" for e in problem["errors"])
    assert await count_rows(db, "clients") == 0


async def test_unknown_field_error_names_the_field(client: Api) -> None:
    assert_problem(await client.post(CLIENTS, json=client_body(nickname="bob")), 400, "nickname")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([], id="array"),
        pytest.param("79161234567", id="string"),
        pytest.param(None, id="null"),
    ],
)
async def test_create_refuses_a_body_that_is_not_an_object(client: Api, db: AsyncSession, payload: Any) -> None:
    assert_problem(await client.post(CLIENTS, json=payload), 400, "body")
    assert await count_rows(db, "clients") == 0


async def test_create_refuses_malformed_json(client: Api, db: AsyncSession) -> None:
    response = await client.post(CLIENTS, content=b'{"phone": ', headers={"content-type": "application/json"})

    assert_problem(response, 400)
    assert await count_rows(db, "clients") == 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param({"phone": "7916"}, "phone", id="phone"),
        pytest.param({"phone": None}, "phone", id="phone-null"),
        pytest.param({"operator_code": "1234"}, "operator_code", id="operator-code"),
        pytest.param({"timezone": "Europe/Atlantis"}, "timezone", id="timezone"),
        pytest.param({"tag": "y" * 101}, "tag", id="tag"),
    ],
)
async def test_patch_refuses_invalid_fields_and_changes_nothing(client: Api, patch: dict[str, Any], field: str) -> None:
    created = await create_client(client)

    assert_problem(await client.patch(f"{CLIENTS}/{created['id']}", json=patch), 400, field)
    assert (await client.get(f"{CLIENTS}/{created['id']}")).json() == created


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        p
        for p in INVALID_CLIENT_FIELDS
        if p.id in {"phone-too-short", "phone-starts-with-8", "timezone-unknown", "tag-too-long"}
    ],
)
async def test_put_refuses_invalid_fields_and_changes_nothing(
    client: Api, overrides: dict[str, Any], field: str
) -> None:
    created = await create_client(client)

    assert_problem(await client.put(f"{CLIENTS}/{created['id']}", json=client_body(**overrides)), 400, field)
    assert (await client.get(f"{CLIENTS}/{created['id']}")).json() == created


async def test_non_positive_id_is_refused(client: Api) -> None:
    assert_problem(await client.get(f"{CLIENTS}/0"), 400, "client_id")


# --- bulk import -------------------------------------------------------------------------------------------------


async def test_bulk_creates_every_row_in_request_order(client: Api, db: AsyncSession) -> None:
    # Descending phones: request order must not be confused with phone order.
    rows = [client_body(phone=f"7916000000{i}", timezone="UTC", tag="") for i in range(5, 0, -1)]
    rows[1]["operator_code"] = "999"
    rows[2]["tag"] = "vip"
    rows[3]["timezone"] = "Asia/Vladivostok"

    response = await client.post(BULK, json=rows)

    assert response.status_code == 201, response.text
    created = response.json()
    assert [c["phone"] for c in created] == [r["phone"] for r in rows]
    assert [c["operator_code"] for c in created] == ["916", "999", "916", "916", "916"]
    assert [c["tag"] for c in created] == ["", "", "vip", "", ""]
    assert [c["timezone"] for c in created] == ["UTC", "UTC", "UTC", "Asia/Vladivostok", "UTC"]
    assert len({c["id"] for c in created}) == 5
    for c in created:
        assert (await client.get(f"{CLIENTS}/{c['id']}")).json() == c
    assert await count_rows(db, "clients") == 5


async def test_bulk_accepts_the_largest_batch(client: Api, db: AsyncSession) -> None:
    rows = [{"phone": f"7{i:010d}", "timezone": "UTC"} for i in range(MAX_BULK_ROWS)]

    response = await client.post(BULK, json=rows)

    assert response.status_code == 201
    assert len(response.json()) == MAX_BULK_ROWS
    assert await count_rows(db, "clients") == MAX_BULK_ROWS


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        pytest.param({"phone": "89160000003"}, "[3].phone", id="phone"),
        pytest.param({"timezone": "Nowhere/Special"}, "[3].timezone", id="timezone"),
        pytest.param({"operator_code": "9"}, "[3].operator_code", id="operator-code"),
        pytest.param({"tag": "t" * 101}, "[3].tag", id="tag"),
    ],
)
async def test_bulk_with_one_bad_row_writes_nothing(
    client: Api, db: AsyncSession, bad: dict[str, Any], field: str
) -> None:
    rows = [client_body() for _ in range(6)]
    rows[3].update(bad)

    assert_problem(await client.post(BULK, json=rows), 400, field)
    assert await count_rows(db, "clients") == 0


async def test_bulk_names_every_row_with_an_unknown_time_zone(client: Api, db: AsyncSession) -> None:
    rows = [client_body() for _ in range(5)]
    rows[1]["timezone"] = "Nowhere/One"
    rows[4]["timezone"] = "Nowhere/Four"

    assert_problem(await client.post(BULK, json=rows), 400, "[1].timezone", "[4].timezone")
    assert await count_rows(db, "clients") == 0


async def test_bulk_refuses_a_phone_repeated_in_the_request(client: Api, db: AsyncSession) -> None:
    rows = [client_body() for _ in range(5)]
    rows[4]["phone"] = rows[1]["phone"]

    problem = assert_problem(await client.post(BULK, json=rows), 400, "[4].phone")
    assert rows[1]["phone"] in problem["detail"]
    assert await count_rows(db, "clients") == 0


async def test_bulk_refuses_a_phone_already_in_the_directory(client: Api, db: AsyncSession) -> None:
    existing = await create_client(client)
    rows = [client_body() for _ in range(5)]
    rows[2]["phone"] = existing["phone"]

    problem = assert_problem(await client.post(BULK, json=rows), 409, "[2].phone")
    assert existing["phone"] in problem["detail"]
    assert await count_rows(db, "clients") == 1
    assert (await client.get(f"{CLIENTS}/{existing['id']}")).json() == existing


async def test_bulk_refuses_an_unknown_field_in_a_row(client: Api, db: AsyncSession) -> None:
    rows = [client_body() for _ in range(3)]
    rows[2]["nickname"] = "bob"

    problem = assert_problem(await client.post(BULK, json=rows), 400)
    assert any("nickname" in e["message"] for e in problem["errors"])
    assert await count_rows(db, "clients") == 0


async def test_bulk_refuses_an_object_instead_of_an_array(client: Api, db: AsyncSession) -> None:
    assert_problem(await client.post(BULK, json=client_body()), 400, "body")
    assert await count_rows(db, "clients") == 0


async def test_bulk_refuses_an_empty_array(client: Api) -> None:
    assert_problem(await client.post(BULK, json=[]), 400, "body")


async def test_bulk_refuses_more_than_the_largest_batch(client: Api, db: AsyncSession) -> None:
    rows = [{"phone": f"7{i:010d}", "timezone": "UTC"} for i in range(MAX_BULK_ROWS + 1)]

    assert_problem(await client.post(BULK, json=rows), 400, "body")
    assert await count_rows(db, "clients") == 0
