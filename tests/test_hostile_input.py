"""Input a hostile or careless caller sends: each is a 4xx problem naming the field (or a 404), never a
500, and nothing is written. Races between a change and a deletion of the same row end in a 404."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from tests.api import Api, count_rows, create_client, create_mailing
from tests.conftest import API_TOKEN
from tests.delivery.observe import insert_clients, rows
from tests.problems import assert_problem

CLIENTS = "/api/v1/clients"
MAILINGS = "/api/v1/mailings"
BIGINT_MAX = 2**63 - 1
PAST_BIGINT = [str(BIGINT_MAX + 1), "99999999999999999999"]


def mailing_body(**overrides: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    body = {
        "text": "Spring sale",
        "kind": "service",
        "start_at": (now + dt.timedelta(days=30)).isoformat(),
        "end_at": (now + dt.timedelta(days=31)).isoformat(),
    }
    return body | overrides


# --- ids past the bigint range ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", PAST_BIGINT)
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", CLIENTS + "/{}", "client_id"),
        ("PATCH", CLIENTS + "/{}", "client_id"),
        ("DELETE", CLIENTS + "/{}", "client_id"),
        ("GET", MAILINGS + "/{}", "mailing_id"),
        ("PATCH", MAILINGS + "/{}", "mailing_id"),
        ("DELETE", MAILINGS + "/{}", "mailing_id"),
        ("GET", MAILINGS + "/{}/stats", "mailing_id"),
        ("GET", "/api/v1/messages?mailing_id={}", "mailing_id"),
        ("GET", "/api/v1/messages?client_id={}", "client_id"),
        ("GET", CLIENTS + "?offset={}", "offset"),
        ("GET", MAILINGS + "/1/stats?offset={}", "offset"),
    ],
)
async def test_an_id_past_the_bigint_range_is_a_problem_naming_it(
    client: Api, method: str, path: str, field: str, ident: str
) -> None:
    body = {"tag": "x"} if method == "PATCH" and path.startswith(CLIENTS) else {}
    response = await client.request(method, path.format(ident), json=body if method == "PATCH" else None)

    problem = assert_problem(response, 400, field)
    assert "9223372036854775807" in problem["errors"][0]["message"]


async def test_the_largest_bigint_is_an_id_that_simply_does_not_exist(client: Api) -> None:
    for path in (f"{CLIENTS}/{BIGINT_MAX}", f"{MAILINGS}/{BIGINT_MAX}", f"{MAILINGS}/{BIGINT_MAX}/stats"):
        assert_problem(await client.get(path), 404)
    response = await client.get(f"/api/v1/messages?mailing_id={BIGINT_MAX}&offset={BIGINT_MAX}")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": BIGINT_MAX}


# --- NUL characters, which PostgreSQL text cannot hold ------------------------------------------------------------


async def test_a_nul_in_a_mailing_text_is_refused_naming_it(client: Api, db: AsyncSession) -> None:
    assert_problem(await client.post(MAILINGS, json=mailing_body(text="Sale\u0000!")), 400, "text")
    mailing_id = (await create_mailing(client, **mailing_body()))["id"]
    assert_problem(await client.patch(f"{MAILINGS}/{mailing_id}", json={"text": "\u0000"}), 400, "text")
    assert_problem(await client.put(f"{MAILINGS}/{mailing_id}", json=mailing_body(text="a\u0000")), 400, "text")

    assert (await client.get(f"{MAILINGS}/{mailing_id}")).json()["text"] == "Spring sale"
    assert await count_rows(db, "mailings") == 1


async def test_a_nul_in_a_filter_tag_is_refused_naming_it(client: Api, db: AsyncSession) -> None:
    body = mailing_body(filter={"tags": ["vip", "v\u0000ip"]})

    assert_problem(await client.post(MAILINGS, json=body), 400, "filter.tags[1]")
    assert await count_rows(db, "mailings") == 0


async def test_a_nul_in_a_client_tag_is_refused_naming_it(client: Api, db: AsyncSession) -> None:
    row = {"phone": "79161234567", "timezone": "Europe/Moscow", "tag": "v\u0000ip"}
    assert_problem(await client.post(CLIENTS, json=row), 400, "tag")
    good = {"phone": "79161234568", "timezone": "Europe/Moscow"}
    assert_problem(
        await client.post(f"{CLIENTS}/bulk", json=[good, good | {"phone": "79161234569"}, row]), 400, "[2].tag"
    )
    client_id = (await create_client(client, phone="79161234567", timezone="Europe/Moscow", tag=""))["id"]
    assert_problem(await client.patch(f"{CLIENTS}/{client_id}", json={"tag": "\u0000"}), 400, "tag")
    assert_problem(await client.get(CLIENTS, params={"tag": "a\u0000"}), 400, "tag")

    assert (await client.get(f"{CLIENTS}/{client_id}")).json()["tag"] == ""
    assert await count_rows(db, "clients") == 1


# --- instants that exist with their offset but not in UTC ---------------------------------------------------------


@pytest.mark.parametrize("instant", ["9999-12-31T20:00:00-12:00", "0001-01-01T00:00:00+14:00"])
async def test_an_instant_outside_the_utc_calendar_is_refused_naming_it(
    client: Api, db: AsyncSession, instant: str
) -> None:
    for field in ("start_at", "end_at"):
        problem = assert_problem(await client.post(MAILINGS, json=mailing_body(**{field: instant})), 400, field)
        assert "between 0001-01-01 and 9999-12-31 in UTC" in problem["errors"][0]["message"]
    mailing_id = (await create_mailing(client, **mailing_body()))["id"]
    assert_problem(await client.patch(f"{MAILINGS}/{mailing_id}", json={"start_at": instant}), 400, "start_at")

    assert await count_rows(db, "mailings") == 1


async def test_the_extreme_instants_that_do_exist_in_utc_are_accepted(client: Api) -> None:
    body = mailing_body(start_at="0001-01-01T00:00:00+00:00", end_at="9999-12-31T23:59:59+00:00")

    response = await client.post(MAILINGS, json=body)

    assert response.status_code == 201, response.text
    assert response.json()["end_at"].startswith("9999-12-31T23:59:59")


# --- bodies nested deeper than the decoder goes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", CLIENTS), ("POST", f"{CLIENTS}/bulk"), ("POST", MAILINGS), ("PATCH", f"{MAILINGS}/1")],
)
@pytest.mark.parametrize("opening", ["[", '{"a":'])
async def test_a_body_nested_5000_deep_is_refused_naming_the_body(
    client: Api, db: AsyncSession, method: str, path: str, opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    body = opening * 5000 + ("" if opening == "[" else "1") + closing * 5000

    response = await client.request(method, path, content=body, headers={"content-type": "application/json"})

    problem = assert_problem(response, 400, "body")
    assert problem["errors"][0]["message"] == "JSON nested too deeply"
    assert await count_rows(db, "clients") + await count_rows(db, "mailings") == 0


# --- a change or a read racing a deletion of the same row ---------------------------------------------------------
# Over real HTTP: the in-process test client runs one request at a time, so nothing would race.

ROUNDS = 10
AUDIENCE = 3
PAIRS_PER_ROUND = 8


@pytest.fixture
async def http(live_server: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers, timeout=30) as session:
        yield session


async def race(make: Any, first: Any, second: Any) -> tuple[Counter[int], Counter[int]]:
    """Runs ``first`` and ``second`` on fresh rows (``make`` creates one) at once, PAIRS_PER_ROUND rows at a time, each
    pair in either order and a little apart, so that the interleavings of their statements vary."""
    rng = random.Random(15)
    firsts: Counter[int] = Counter()
    seconds: Counter[int] = Counter()

    async def after(delay_s: float, call: Any, ident: int) -> httpx.Response:
        await asyncio.sleep(delay_s)
        response: httpx.Response = await call(ident)
        return response

    for _ in range(ROUNDS):
        ids = [(await make())["id"] for _ in range(PAIRS_PER_ROUND)]
        answers = await asyncio.gather(
            *(after(rng.uniform(0, 0.005), call, ident) for ident in ids for call in (first, second))
        )
        firsts.update(r.status_code for r in answers[0::2])
        seconds.update(r.status_code for r in answers[1::2])
    return firsts, seconds


async def test_a_mailing_patched_while_deleted_is_updated_or_not_found(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    patched, deleted = await race(
        lambda: create_mailing(http, **mailing_body()),
        lambda ident: http.patch(f"{MAILINGS}/{ident}", json={"text": "changed", "filter": {"tags": ["vip"]}}),
        lambda ident: http.delete(f"{MAILINGS}/{ident}"),
    )

    assert set(patched) <= {200, 404}, patched
    assert deleted == Counter({204: ROUNDS * PAIRS_PER_ROUND}), deleted
    assert await count_rows(db, "mailings") == 0


async def test_a_mailings_stats_read_while_it_is_deleted_are_whole_or_not_found(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    conninfo = settings.psycopg_conninfo
    await insert_clients(conninfo, AUDIENCE)

    async def planned_mailing() -> dict[str, Any]:
        # Messages of its own, so that a figure read after the deletion committed would show as fewer.
        mailing = await create_mailing(http, **mailing_body())
        await rows(
            conninfo,
            "INSERT INTO messages (mailing_id, client_id, due_at) SELECT %(id)s, id, now() FROM clients RETURNING id",
            {"id": mailing["id"]},
        )
        return mailing

    async def stats(ident: int) -> httpx.Response:
        response = await http.get(f"{MAILINGS}/{ident}/stats")
        if response.status_code == 200:
            # Read from one snapshot: never a mailing without its figures.
            body = response.json()
            assert body["mailing"]["id"] == body["mailing_id"] == ident
            assert body["total"] == body["by_status"]["pending"] == AUDIENCE, body
            assert body["messages"]["total"] == len(body["messages"]["items"]) == AUDIENCE, body
        return response

    read, deleted = await race(planned_mailing, stats, lambda ident: http.delete(f"{MAILINGS}/{ident}"))

    assert set(read) <= {200, 404}, read
    assert deleted == Counter({204: ROUNDS * PAIRS_PER_ROUND}), deleted


async def test_a_client_patched_while_deleted_is_updated_or_not_found(
    http: httpx.AsyncClient, db: AsyncSession
) -> None:
    phones = iter(range(79_100_000_000, 79_200_000_000))
    patched, deleted = await race(
        lambda: create_client(http, phone=str(next(phones)), timezone="Europe/Moscow"),
        lambda ident: http.patch(f"{CLIENTS}/{ident}", json={"tag": "moved", "timezone": "Asia/Tokyo"}),
        lambda ident: http.delete(f"{CLIENTS}/{ident}"),
    )

    assert set(patched) <= {200, 404}, patched
    assert deleted == Counter({204: ROUNDS * PAIRS_PER_ROUND}), deleted
    assert await count_rows(db, "clients") == 0
