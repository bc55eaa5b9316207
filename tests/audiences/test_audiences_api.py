"""Audiences through the API: saved filters, used by mailings instead of their own, the preview on
one, and their deletion refused while something still needs them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import MAILINGS, Api, add_clients, count_rows, create_mailing, utc_now
from tests.problems import assert_problem

AUDIENCES = "/api/v1/audiences"


async def create_audience(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.post(AUDIENCES, json={"name": "VIP", "filter": {"tags": ["vip"]}, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_audience_is_created_read_changed_and_audited(client: Api) -> None:
    audience = await create_audience(client, filter={"tags": ["vip", "vip"], "operator_codes": ["916"]})
    assert audience["filter"] == {"tags": ["vip"], "operator_codes": ["916"], "attributes": {}}
    assert (await client.get(f"{AUDIENCES}/{audience['id']}")).json()["name"] == "VIP"
    changed = await client.patch(f"{AUDIENCES}/{audience['id']}", json={"name": "Gold"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["filter"]["tags"] == ["vip"]
    listed = (await client.get(AUDIENCES)).json()
    assert [a["name"] for a in listed["items"]] == ["Gold"]
    audit = (await client.get("/api/v1/audit", params={"entity": "audience"})).json()["items"]
    assert {entry["action"] for entry in audit} == {"create", "update"}


async def test_bad_audiences_are_refused_naming_the_field(client: Api) -> None:
    await create_audience(client)
    assert_problem(await client.post(AUDIENCES, json={"name": "VIP"}), 409, "name")
    assert_problem(await client.post(AUDIENCES, json={"name": "  "}), 400, "name")
    assert_problem(await client.post(AUDIENCES, json={"name": "x", "filter": {"tags": [1]}}), 400, "filter.tags[0]")
    assert_problem(await client.get(f"{AUDIENCES}/999"), 404)


async def test_a_mailing_takes_an_audience_or_a_filter_never_both(client: Api) -> None:
    audience = await create_audience(client)
    now = utc_now()
    body = {
        "text": "Hi",
        "kind": "service",
        "start_at": (now + dt.timedelta(hours=1)).isoformat(),
        "end_at": (now + dt.timedelta(hours=2)).isoformat(),
    }
    both = await client.post(MAILINGS, json={**body, "audience_id": audience["id"], "filter": {"tags": ["a"]}})
    assert_problem(both, 400, "audience_id")
    assert_problem(await client.post(MAILINGS, json={**body, "audience_id": 999}), 400, "audience_id")
    mailing = await client.post(MAILINGS, json={**body, "audience_id": audience["id"]})
    assert mailing.status_code == 201, mailing.text
    assert mailing.json()["audience_id"] == audience["id"]
    # Choosing a filter later drops the audience.
    changed = await client.patch(f"{MAILINGS}/{mailing.json()['id']}", json={"filter": {"tags": ["a"]}})
    assert changed.json()["audience_id"] is None
    assert changed.json()["filter"]["tags"] == ["a"]


async def test_the_preview_counts_who_the_audience_matches_now(client: Api) -> None:
    await add_clients(client, 3, tag="vip")
    await add_clients(client, 2, tag="other")
    audience = await create_audience(client)
    now = utc_now()
    body = {
        "text": "Hi",
        "kind": "service",
        "start_at": now.isoformat(),
        "end_at": (now + dt.timedelta(hours=1)).isoformat(),
    }
    preview = await client.post(f"{MAILINGS}/preview", json={**body, "audience_id": audience["id"]})
    assert preview.status_code == 200, preview.text
    assert preview.json()["clients"] == 3
    await client.patch(f"{AUDIENCES}/{audience['id']}", json={"filter": {"tags": ["vip", "other"]}})
    mailing = await create_mailing(
        client,
        audience_id=audience["id"],
        start_at=(now + dt.timedelta(hours=1)).isoformat(),
        end_at=(now + dt.timedelta(hours=2)).isoformat(),
    )
    existing = await client.get(f"{MAILINGS}/{mailing['id']}/preview")
    assert existing.json()["clients"] == 5


async def test_an_audience_in_use_is_not_deleted(client: Api, db: AsyncSession) -> None:
    audience = await create_audience(client)
    now = utc_now()
    mailing = await create_mailing(
        client,
        audience_id=audience["id"],
        start_at=(now + dt.timedelta(hours=1)).isoformat(),
        end_at=(now + dt.timedelta(hours=2)).isoformat(),
    )
    schedule = await client.post(
        "/api/v1/schedules",
        json={
            "name": "Daily",
            "text": "Hi",
            "rrule": "FREQ=DAILY;COUNT=7",
            "kind": "service",
            "starts": "2030-12-05T10:00",
            "timezone": "Europe/Moscow",
            "duration_minutes": 60,
            "audience_id": audience["id"],
        },
    )
    assert schedule.status_code == 201, schedule.text
    refused = assert_problem(await client.delete(f"{AUDIENCES}/{audience['id']}"), 409, "id")
    assert f"mailing {mailing['id']}" in refused["detail"]
    assert f"schedule {schedule.json()['id']}" in refused["detail"]
    assert await count_rows(db, "audiences") == 1
    assert (await client.get(f"{MAILINGS}/{mailing['id']}")).json()["audience_id"] == audience["id"]

    # Once the schedule is gone and the mailing has finished, the audience goes; the finished
    # mailing keeps the filter it was planned with.
    assert (await client.delete(f"/api/v1/schedules/{schedule.json()['id']}")).status_code == 204
    await db.execute(
        text("UPDATE mailings SET start_at = now() - interval '2 hours', end_at = now() - interval '1 hour'")
    )
    await db.commit()
    assert (await client.delete(f"{AUDIENCES}/{audience['id']}")).status_code == 204
    kept = (await client.get(f"{MAILINGS}/{mailing['id']}")).json()
    assert kept["audience_id"] is None
    assert kept["filter"]["tags"] == ["vip"]
