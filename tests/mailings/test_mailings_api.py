"""The mailings API: CRUD, pagination, the derived status and the problem details of every refusal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import MAILINGS, Api, count_rows, create_mailing
from tests.problems import assert_problem

MISSING_ID = 987_654
TEXT_MAX_LENGTH = 1600
MSK = dt.timezone(dt.timedelta(hours=3))
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def later(days: float = 0, hours: float = 0) -> dt.datetime:
    # Whole seconds in Moscow time: the response is in UTC, so the test also sees the offset honoured.
    return (dt.datetime.now(MSK) + dt.timedelta(days=days, hours=hours)).replace(microsecond=0)


def mailing_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": "Spring sale: -20% on everything",
        "kind": "service",
        "start_at": later(days=30).isoformat(),
        "end_at": later(days=31).isoformat(),
    }
    body.update(overrides)
    return body


async def create(api: Api, **overrides: Any) -> dict[str, Any]:
    """A mailing a month ahead unless ``overrides`` say otherwise."""
    return await create_mailing(api, **mailing_body(**overrides))


def instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def without_status(mailing: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mailing.items() if k != "status"}


# --- create and read -------------------------------------------------------------------------------------------


async def test_create_a_future_mailing_without_filter_or_window(client: Api) -> None:
    payload = mailing_body()

    response = await client.post(MAILINGS, json=payload)

    assert response.status_code == 201, response.text
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["text"] == payload["text"]
    assert instant(body["start_at"]) == instant(payload["start_at"])
    assert instant(body["end_at"]) == instant(payload["end_at"])
    assert body["filter"] == {"operator_codes": [], "tags": [], "attributes": {}}
    assert body["send_window"] is None
    assert body["status"] == "scheduled"
    created_at = instant(body["created_at"])
    assert abs(dt.datetime.now(dt.UTC) - created_at) < dt.timedelta(minutes=1)
    assert instant(body["updated_at"]) >= created_at


async def test_create_echoes_filter_and_send_window(client: Api) -> None:
    body = await create(
        client,
        filter={"operator_codes": ["903", "916"], "tags": ["new", "vip"]},
        send_window={"start": "22:00", "end": "06:30"},
    )

    assert body["filter"] == {"operator_codes": ["903", "916"], "tags": ["new", "vip"], "attributes": {}}
    # Wrapping past midnight is a valid window, not an empty one.
    assert body["send_window"] == {"start": "22:00", "end": "06:30"}
    assert body["status"] == "scheduled"
    assert (await client.get(f"{MAILINGS}/{body['id']}")).json() == body


async def test_create_with_only_one_filter_list(client: Api) -> None:
    body = await create(client, filter={"tags": ["vip"]})

    assert body["filter"] == {"operator_codes": [], "tags": ["vip"], "attributes": {}}


async def test_create_a_mailing_that_is_due_now(client: Api) -> None:
    body = await create(client, start_at=later(hours=-1).isoformat(), end_at=later(hours=1).isoformat())

    # No worker runs here: the mailing has begun and is not planned yet, so nothing can have finished it.
    assert body["status"] == "running"
    assert (await client.get(f"{MAILINGS}/{body['id']}")).json() == body


async def test_create_accepts_the_longest_text(client: Api) -> None:
    assert (await create(client, text="я" * TEXT_MAX_LENGTH))["text"] == "я" * TEXT_MAX_LENGTH


async def test_get_returns_what_create_returned(client: Api) -> None:
    created = await create(client, filter={"operator_codes": ["916"]})

    response = await client.get(f"{MAILINGS}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


# --- list --------------------------------------------------------------------------------------------------------


async def test_list_pages_by_id_and_counts_every_row(client: Api) -> None:
    ids = [(await create(client, text=f"mailing {i}"))["id"] for i in range(4)]

    page = (await client.get(MAILINGS, params={"limit": 2, "offset": 1})).json()
    everything = (await client.get(MAILINGS)).json()

    assert page["total"] == 4
    assert page["limit"] == 2
    assert page["offset"] == 1
    assert [m["id"] for m in page["items"]] == ids[1:3]
    assert [m["text"] for m in page["items"]] == ["mailing 1", "mailing 2"]
    assert [m["id"] for m in everything["items"]] == ids
    assert (everything["total"], everything["limit"], everything["offset"]) == (4, 50, 0)


async def test_list_of_nothing(client: Api) -> None:
    assert (await client.get(MAILINGS)).json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_list_past_the_end_still_counts_every_row(client: Api) -> None:
    await create(client)

    assert (await client.get(MAILINGS, params={"offset": 5})).json()["total"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 100_000}, "limit", id="limit-too-big"),
        pytest.param({"offset": -1}, "offset", id="offset-negative"),
    ],
)
async def test_list_refuses_bad_query_parameters(client: Api, params: dict[str, Any], field: str) -> None:
    assert_problem(await client.get(MAILINGS, params=params), 400, field)


# --- update ------------------------------------------------------------------------------------------------------


async def test_patch_text_only(client: Api) -> None:
    created = await create(client, filter={"tags": ["vip"]}, send_window={"start": "09:00", "end": "18:00"})

    response = await client.patch(f"{MAILINGS}/{created['id']}", json={"text": "Changed text"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Changed text"
    untouched = without_status(created) | {"text": "Changed text", "updated_at": body["updated_at"]}
    assert without_status(body) == untouched
    assert body["status"] == "scheduled"
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json() == body


async def test_patch_send_window_null_clears_it(client: Api) -> None:
    created = await create(client, send_window={"start": "09:00", "end": "18:00"})

    body = (await client.patch(f"{MAILINGS}/{created['id']}", json={"send_window": None})).json()

    assert body["send_window"] is None
    assert body["text"] == created["text"]
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json()["send_window"] is None


async def test_patch_without_send_window_keeps_it(client: Api) -> None:
    created = await create(client, send_window={"start": "09:00", "end": "18:00"})

    body = (await client.patch(f"{MAILINGS}/{created['id']}", json={"text": "other"})).json()

    assert body["send_window"] == {"start": "09:00", "end": "18:00"}


async def test_patch_sets_a_send_window(client: Api) -> None:
    created = await create(client)

    body = (
        await client.patch(f"{MAILINGS}/{created['id']}", json={"send_window": {"start": "08:15", "end": "20:45"}})
    ).json()

    assert body["send_window"] == {"start": "08:15", "end": "20:45"}


async def test_patch_filter(client: Api) -> None:
    created = await create(client, filter={"operator_codes": ["916"], "tags": ["vip"]})

    body = (await client.patch(f"{MAILINGS}/{created['id']}", json={"filter": {"operator_codes": ["903"]}})).json()

    # The filter is replaced as a whole: an omitted list is empty, not kept.
    assert body["filter"] == {"operator_codes": ["903"], "tags": [], "attributes": {}}
    assert body["text"] == created["text"]
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json()["filter"] == body["filter"]


async def test_patch_times(client: Api) -> None:
    created = await create(client)
    start, end = later(days=40), later(days=40, hours=2)

    body = (
        await client.patch(
            f"{MAILINGS}/{created['id']}", json={"start_at": start.isoformat(), "end_at": end.isoformat()}
        )
    ).json()

    assert instant(body["start_at"]) == start
    assert instant(body["end_at"]) == end
    assert body["status"] == "scheduled"


async def test_put_replaces_every_field(client: Api) -> None:
    created = await create(
        client, filter={"operator_codes": ["916"], "tags": ["vip"]}, send_window={"start": "09:00", "end": "18:00"}
    )
    start, end = later(days=50), later(days=51)

    response = await client.put(
        f"{MAILINGS}/{created['id']}",
        json={"text": "Replaced", "kind": "advertising", "start_at": start.isoformat(), "end_at": end.isoformat()},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == created["id"]
    assert body["text"] == "Replaced"
    assert body["kind"] == "advertising"
    assert instant(body["start_at"]) == start
    assert instant(body["end_at"]) == end
    # Omitted fields take their defaults rather than keeping the old values.
    assert body["filter"] == {"operator_codes": [], "tags": [], "attributes": {}}
    assert body["send_window"] is None
    assert body["created_at"] == created["created_at"]
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json() == body


async def test_put_with_filter_and_window(client: Api) -> None:
    created = await create(client)

    body = (
        await client.put(
            f"{MAILINGS}/{created['id']}",
            json=mailing_body(filter={"tags": ["new"]}, send_window={"start": "10:00", "end": "11:00"}),
        )
    ).json()

    assert body["filter"] == {"operator_codes": [], "tags": ["new"], "attributes": {}}
    assert body["send_window"] == {"start": "10:00", "end": "11:00"}


# --- re-planning ---------------------------------------------------------------------------------------------------


async def _planning_jobs(db: AsyncSession, mailing_id: int) -> list[tuple[int, dt.datetime]]:
    """The mailing's planning jobs waiting in the queue: (plan version, when it runs), in order."""
    found = await db.execute(
        text(
            "SELECT (args->>'plan_version')::int, scheduled_at FROM procrastinate_jobs"
            " WHERE task_name = 'delivery:plan_mailing' AND (args->>'mailing_id')::bigint = :id AND status = 'todo'"
            " ORDER BY id"
        ),
        {"id": mailing_id},
    )
    jobs = [(int(version), scheduled_at) for version, scheduled_at in found]
    await db.rollback()
    return jobs


async def _plan_version(db: AsyncSession, mailing_id: int) -> int:
    version = await db.scalar(text("SELECT plan_version FROM mailings WHERE id = :id"), {"id": mailing_id})
    await db.rollback()
    return int(version)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"filter": {"tags": ["new"]}}, id="filter"),
        pytest.param({"send_window": {"start": "10:00", "end": "12:00"}}, id="window"),
        pytest.param({"end_at": later(days=35).isoformat()}, id="end"),
        pytest.param({"start_at": later(days=30, hours=5).isoformat()}, id="start"),
    ],
)
async def test_a_patch_of_who_or_when_enqueues_the_next_plan_at_the_start(
    client: Api, db: AsyncSession, change: dict[str, Any]
) -> None:
    created = await create(client, filter={"tags": ["vip"]})
    assert await _planning_jobs(db, created["id"]) == [(1, instant(created["start_at"]))]

    response = await client.patch(f"{MAILINGS}/{created['id']}", json=change)

    assert response.status_code == 200, response.text
    body = response.json()
    assert await _plan_version(db, created["id"]) == 2
    assert await _planning_jobs(db, created["id"]) == [
        (1, instant(created["start_at"])),
        (2, instant(body["start_at"])),
    ]


async def test_a_text_change_neither_moves_the_schedule_nor_plans_again(client: Api, db: AsyncSession) -> None:
    created = await create(client, filter={"tags": ["vip"]}, send_window={"start": "09:00", "end": "18:00"})
    jobs = await _planning_jobs(db, created["id"])

    patched = (await client.patch(f"{MAILINGS}/{created['id']}", json={"text": "Only the words change"})).json()
    # A PUT repeating every other field is a text change too.
    same_otherwise = {k: created[k] for k in ("start_at", "end_at", "kind", "filter", "send_window")}
    put = await client.put(f"{MAILINGS}/{created['id']}", json={"text": "And again", **same_otherwise})

    assert put.status_code == 200, put.text
    for body in (patched, put.json()):
        assert {k: body[k] for k in same_otherwise} == same_otherwise
    assert await _plan_version(db, created["id"]) == 1
    assert await _planning_jobs(db, created["id"]) == jobs == [(1, instant(created["start_at"]))]


# --- delete and not found ----------------------------------------------------------------------------------------


async def test_delete_then_get_is_404(client: Api, db: AsyncSession) -> None:
    kept = await create(client)
    gone = await create(client)

    response = await client.delete(f"{MAILINGS}/{gone['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"{MAILINGS}/{gone['id']}"), 404)
    listed = (await client.get(MAILINGS)).json()
    assert [m["id"] for m in listed["items"]] == [kept["id"]]
    assert listed["total"] == 1
    assert await count_rows(db, "mailings") == 1


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        pytest.param("GET", None, id="get"),
        pytest.param("PATCH", {"text": "x"}, id="patch"),
        pytest.param("PUT", mailing_body(), id="put"),
        pytest.param("DELETE", None, id="delete"),
    ],
)
async def test_missing_mailing_is_404(client: Api, db: AsyncSession, method: str, payload: Any) -> None:
    await create(client)

    response = await client.request(method, f"{MAILINGS}/{MISSING_ID}", json=payload)

    body = assert_problem(response, 404)
    assert str(MISSING_ID) in body["detail"]
    assert await count_rows(db, "mailings") == 1


async def test_non_positive_id_is_refused(client: Api) -> None:
    assert_problem(await client.get(f"{MAILINGS}/0"), 400, "mailing_id")


# --- invalid input -----------------------------------------------------------------------------------------------


def _same_start_and_end() -> dict[str, Any]:
    moment = later(days=30).isoformat()
    return {"start_at": moment, "end_at": moment}


INVALID_MAILINGS = [
    pytest.param(_same_start_and_end(), "end_at", id="end-equals-start"),
    pytest.param(
        {"start_at": later(days=31).isoformat(), "end_at": later(days=30).isoformat()}, "end_at", id="end-before-start"
    ),
    pytest.param({"text": "   "}, "text", id="text-blank"),
    pytest.param({"text": ""}, "text", id="text-empty"),
    pytest.param({"text": "x" * (TEXT_MAX_LENGTH + 1)}, "text", id="text-too-long"),
    pytest.param({"text": 42}, "text", id="text-not-a-string"),
    pytest.param({"start_at": "2031-01-01T09:00:00"}, "start_at", id="start-naive"),
    pytest.param({"end_at": "2031-01-01T09:00:00"}, "end_at", id="end-naive"),
    pytest.param({"start_at": "tomorrow"}, "start_at", id="start-not-a-datetime"),
    pytest.param({"filter": {"operator_codes": ["91"]}}, "filter.operator_codes[0]", id="filter-operator-code"),
    pytest.param({"filter": {"operator_codes": ["916", "9160"]}}, "filter.operator_codes[1]", id="filter-second"),
    pytest.param({"filter": {"tags": ["t" * 101]}}, "filter.tags[0]", id="filter-tag-too-long"),
    pytest.param({"filter": {"tags": "vip"}}, "filter.tags", id="filter-tags-not-a-list"),
    pytest.param({"send_window": {"start": "25:00", "end": "10:00"}}, "send_window.start", id="window-start-25h"),
    pytest.param({"send_window": {"start": "09:00", "end": "9:60"}}, "send_window.end", id="window-end-malformed"),
    pytest.param({"send_window": {"start": "10:00", "end": "10:00"}}, "send_window.end", id="window-empty"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_MAILINGS)
async def test_create_refuses_invalid_fields(
    client: Api, db: AsyncSession, overrides: dict[str, Any], field: str
) -> None:
    assert_problem(await client.post(MAILINGS, json=mailing_body(**overrides)), 400, field)
    assert await count_rows(db, "mailings") == 0


async def test_create_refuses_a_window_missing_its_end(client: Api, db: AsyncSession) -> None:
    problem = assert_problem(await client.post(MAILINGS, json=mailing_body(send_window={"start": "10:00"})), 400)

    assert "end" in problem["detail"]
    assert await count_rows(db, "mailings") == 0


@pytest.mark.parametrize("missing", ["text", "start_at", "end_at", "kind"])
async def test_create_refuses_a_missing_required_field(client: Api, db: AsyncSession, missing: str) -> None:
    body = mailing_body()
    del body[missing]

    problem = assert_problem(await client.post(MAILINGS, json=body), 400)

    assert missing in problem["detail"]
    assert await count_rows(db, "mailings") == 0


@pytest.mark.parametrize(
    ("overrides", "unknown"),
    [
        pytest.param({"priority": "high"}, "priority", id="top-level"),
        pytest.param({"filter": {"regions": ["77"]}}, "regions", id="in-filter"),
        pytest.param({"send_window": {"start": "09:00", "end": "18:00", "tz": "UTC"}}, "tz", id="in-window"),
    ],
)
async def test_create_refuses_an_unknown_field(
    client: Api, db: AsyncSession, overrides: dict[str, Any], unknown: str
) -> None:
    problem = assert_problem(await client.post(MAILINGS, json=mailing_body(**overrides)), 400)

    assert any(unknown in e["message"] for e in problem["errors"])
    assert await count_rows(db, "mailings") == 0


@pytest.mark.parametrize(("overrides", "field"), INVALID_MAILINGS)
async def test_put_refuses_invalid_fields_and_changes_nothing(
    client: Api, overrides: dict[str, Any], field: str
) -> None:
    created = await create(client)

    assert_problem(await client.put(f"{MAILINGS}/{created['id']}", json=mailing_body(**overrides)), 400, field)
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json() == created


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param(lambda start: {"end_at": start.isoformat()}, "end_at", id="end-equals-start"),
        pytest.param(lambda start: {"end_at": (start - HOUR).isoformat()}, "end_at", id="end-before-start"),
        pytest.param(lambda start: {"start_at": (start + 2 * DAY).isoformat()}, "end_at", id="start-after-end"),
        pytest.param(lambda start: {"text": "\t \n"}, "text", id="text-blank"),
        pytest.param(lambda start: {"text": None}, "text", id="text-null"),
        pytest.param(
            lambda start: {"send_window": {"start": "07:00", "end": "07:00"}}, "send_window.end", id="window-empty"
        ),
        pytest.param(lambda start: {"filter": {"operator_codes": ["abc"]}}, "filter.operator_codes[0]", id="filter"),
    ],
)
async def test_patch_refuses_invalid_changes_and_changes_nothing(
    client: Api, patch: Callable[[dt.datetime], dict[str, Any]], field: str
) -> None:
    start = later(days=30)
    created = await create(
        client,
        start_at=start.isoformat(),
        end_at=(start + DAY).isoformat(),
        send_window={"start": "09:00", "end": "18:00"},
    )

    assert_problem(await client.patch(f"{MAILINGS}/{created['id']}", json=patch(start)), 400, field)
    assert (await client.get(f"{MAILINGS}/{created['id']}")).json() == created
