"""Client attributes and personalised texts through the API: stored and changed, refused where they
break a rule (naming the field and, for a text, the line and column), and filtered on with the index."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.clients.queries import attributes_parameter, audience_filter
from notification.config import Settings
from tests.api import CLIENTS, MAILINGS, Api, create_client, create_mailing, utc_now
from tests.delivery.observe import rows
from tests.problems import assert_problem

ORDER_TEXT = '{{ name | default("клиент") }}, ваш заказ {{ order }} готов'


def mailing_body(**fields: Any) -> dict[str, Any]:
    now = utc_now()
    return {
        "text": "Winter sale",
        "kind": "service",
        "start_at": (now + dt.timedelta(hours=1)).isoformat(),
        "end_at": (now + dt.timedelta(hours=2)).isoformat(),
        **fields,
    }


async def test_attributes_are_stored_changed_and_replaced_whole(client: Api) -> None:
    created = await create_client(client, attributes={"name": "Анна", "city": "Kazan"})
    assert created["attributes"] == {"name": "Анна", "city": "Kazan"}

    patched = await client.patch(f"{CLIENTS}/{created['id']}", json={"attributes": {"name": "Anna"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["attributes"] == {"name": "Anna"}
    assert (await client.get(f"{CLIENTS}/{created['id']}")).json()["attributes"] == {"name": "Anna"}

    put = await client.put(f"{CLIENTS}/{created['id']}", json={"phone": created["phone"], "timezone": "UTC"})
    assert put.status_code == 200, put.text
    assert put.json()["attributes"] == {}


async def test_an_attribute_named_like_a_client_field_is_refused(client: Api) -> None:
    response = await client.post(CLIENTS, json={"phone": "79161234567", "timezone": "UTC", "attributes": {"tag": "x"}})
    body = assert_problem(response, 400, "attributes.tag")
    assert "must not be the name of a client field" in body["errors"][0]["message"]

    bulk = await client.post(
        f"{CLIENTS}/bulk",
        json=[
            {"phone": "79161234568", "timezone": "UTC", "attributes": {"name": "A"}},
            {"phone": "79161234569", "timezone": "UTC", "attributes": {"phone": "1"}},
        ],
    )
    assert_problem(bulk, 400, "[1].attributes.phone")


async def test_bulk_import_keeps_each_client_s_attributes(client: Api) -> None:
    response = await client.post(
        f"{CLIENTS}/bulk",
        json=[
            {"phone": "79161234568", "timezone": "UTC", "attributes": {"name": "A", "order": "1"}},
            {"phone": "79161234569", "timezone": "UTC"},
        ],
    )
    assert response.status_code == 201, response.text
    assert [c["attributes"] for c in response.json()] == [{"name": "A", "order": "1"}, {}]


async def test_a_text_naming_attributes_some_client_has_is_accepted(client: Api) -> None:
    await create_client(client, attributes={"name": "Анна", "order": "A-1"})
    mailing = await create_mailing(client, text=ORDER_TEXT)
    assert mailing["variables"] == ["name", "order"]
    # The least a message takes: every value empty, the default in place.
    assert (mailing["encoding"], mailing["parts"]) == ("UCS-2", 1)


async def test_an_unknown_variable_is_refused_at_create_patch_and_put(client: Api) -> None:
    await create_client(client, attributes={"name": "Анна"})
    refused = await client.post(MAILINGS, json=mailing_body(text="Hi {{ name }},\nyour {{ ordr }} is ready"))
    body = assert_problem(refused, 400, "text")
    message = body["errors"][0]["message"]
    assert message.startswith("must use only known variables")
    assert "'ordr'" in message
    assert "(line 2, column 6)" in message

    mailing = await create_mailing(client, text="Hi {{ name }}")
    patch = await client.patch(f"{MAILINGS}/{mailing['id']}", json={"text": "Hi {{ nmae }}"})
    assert_problem(patch, 400, "text")
    put = await client.put(f"{MAILINGS}/{mailing['id']}", json=mailing_body(text="{{ city }}"))
    assert_problem(put, 400, "text")
    assert (await client.get(f"{MAILINGS}/{mailing['id']}")).json()["text"] == "Hi {{ name }}"


async def test_a_sandbox_escape_is_refused_with_its_position(client: Api) -> None:
    for text_ in ("{{ ''.__class__ }}", "ok {{ cycler.__init__ }}"):
        body = assert_problem(await client.post(MAILINGS, json=mailing_body(text=text_)), 400, "text")
        assert body["errors"][0]["message"].startswith("must be a valid template")
        assert "(line 1, column " in body["errors"][0]["message"]


async def test_an_attribute_filter_selects_the_clients_with_that_value(client: Api, db: AsyncSession) -> None:
    kazan = await create_client(client, attributes={"city": "Kazan", "name": "A"})
    await create_client(client, attributes={"city": "Moscow"})
    await create_client(client)
    preview = await client.post(f"{MAILINGS}/preview", json=mailing_body(filter={"attributes": {"city": "Kazan"}}))
    assert preview.status_code == 200, preview.text
    assert preview.json()["clients"] == 1

    mailing = await create_mailing(client, filter={"attributes": {"city": "Kazan"}})
    assert mailing["filter"]["attributes"] == {"city": "Kazan"}
    rows = (
        await db.execute(text("SELECT filter_attributes FROM mailings WHERE id = :id"), {"id": mailing["id"]})
    ).all()
    assert rows == [({"city": "Kazan"},)]
    assert kazan["attributes"]["city"] == "Kazan"


async def test_an_attribute_filter_reads_the_gin_index(db: AsyncSession, settings: Settings) -> None:
    await db.execute(
        text(
            "INSERT INTO clients (phone, operator_code, timezone, attributes, created_at, updated_at)"
            " SELECT (79000000000 + i)::text, '900', 'UTC',"
            " CASE WHEN i % 2 = 0 THEN jsonb_build_object('city', 'city' || (i % 500), 'name', 'n' || i)"
            " ELSE '{}'::jsonb END, now(), now()"
            " FROM generate_series(1, 5000) i"
        )
    )
    await db.execute(text("ANALYZE clients"))
    await db.commit()
    # The filter as planning writes it: the same fragment, the same parameter.
    explain = sql.SQL("EXPLAIN SELECT count(*) FROM clients WHERE {}").format(audience_filter([], [], {"city": "c"}))
    plan = await rows(settings.psycopg_conninfo, explain, {"attributes": attributes_parameter({"city": "city8"})})
    assert "ix_clients_attributes" in "\n".join(line for (line,) in plan), plan
