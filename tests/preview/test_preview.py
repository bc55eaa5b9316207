"""Audience preview: its figures against a direct count of the directory, its refusals, and that
it creates nothing."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import MAILINGS, Api
from tests.mailings.test_mailings_api import MISSING_ID, create
from tests.problems import assert_problem

PREVIEW = f"{MAILINGS}/preview"
# 06:00 UTC on a winter day: 09:00 in Moscow and 16:00 in Vladivostok (inside 09:00-18:00), 07:00 in
# Berlin (opens at 08:00 UTC, before the end), 06:00 in UTC and 01:00 in New York (open at 09:00
# and 14:00 UTC: not before the end at 09:00 UTC).
START = dt.datetime(2026, 12, 10, 6, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=3)
WINDOW = {"start": "09:00", "end": "18:00"}
ZONES = ("Europe/Moscow", "Asia/Vladivostok", "Europe/Berlin", "UTC", "America/New_York")
CODES = ("916", "903", "999", "925", "901")
TAGS = ("", "vip", "new")


async def _seed(db: AsyncSession, count: int, codes: tuple[str, ...] = CODES, seed: int = 5) -> None:
    rng = random.Random(seed)
    rows = [
        {
            "phone": str(79_100_000_000 + i),
            "operator_code": rng.choice(codes),
            "tag": rng.choice(TAGS),
            "timezone": rng.choice(ZONES),
        }
        for i in range(count)
    ]
    await db.execute(
        text(
            "INSERT INTO clients (phone, operator_code, tag, timezone) VALUES (:phone, :operator_code, :tag, :timezone)"
        ),
        rows,
    )
    await db.commit()


async def _directory(db: AsyncSession) -> list[Any]:
    rows = list(await db.execute(text("SELECT operator_code, tag, timezone FROM clients")))
    await db.rollback()
    return rows


def _body(**overrides: Any) -> dict[str, Any]:
    return {
        "text": "Winter sale",
        "kind": "service",
        "start_at": START.isoformat(),
        "end_at": END.isoformat(),
        "filter": {"operator_codes": ["916", "903"], "tags": ["vip", ""]},
        "send_window": WINDOW,
        **overrides,
    }


def _inside(timezone: str, moment: dt.datetime) -> bool:
    """The 09:00-18:00 window read off the client's wall clock, with zoneinfo alone."""
    return dt.time(9) <= moment.astimezone(ZoneInfo(timezone)).time() < dt.time(18)


def _minutes(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every minute from ``start`` up to ``end``: a walk that finds an opening on a half or quarter hour too."""
    return [start + dt.timedelta(minutes=i) for i in range(int((end - start).total_seconds() // 60))]


def _expected(clients: list[Any], codes: list[str], tags: list[str]) -> dict[str, Any]:
    """Client by client: the slow, obvious way."""
    matching = [c for c in clients if (not codes or c.operator_code in codes) and (not tags or c.tag in tags)]
    outside = [c for c in matching if not _inside(c.timezone, START)]
    never = [c for c in outside if not any(_inside(c.timezone, moment) for moment in _minutes(START, END))]
    by_code = Counter(c.operator_code for c in matching)
    by_zone = Counter(c.timezone for c in matching)
    return {
        "clients": len(matching),
        "by_operator_code": sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])),
        "by_timezone": sorted(by_zone.items(), key=lambda kv: (-kv[1], kv[0])),
        "outside_window_at_start": len(outside),
        "never_inside_before_end": len(never),
        "zones_outside": {c.timezone for c in outside},
        "zones_never": {c.timezone for c in never},
    }


async def test_preview_figures_equal_a_direct_count(client: Api, db: AsyncSession) -> None:
    await _seed(db, 400)
    expected = _expected(await _directory(db), ["916", "903"], ["vip", ""])
    assert expected["zones_outside"] == {"Europe/Berlin", "UTC", "America/New_York"}
    assert expected["zones_never"] == {"UTC", "America/New_York"}

    response = await client.post(PREVIEW, json=_body())

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["clients"] == expected["clients"] > 0
    assert [(s["operator_code"], s["clients"]) for s in body["by_operator_code"]] == expected["by_operator_code"]
    assert [(s["timezone"], s["clients"]) for s in body["by_timezone"]] == expected["by_timezone"]
    assert body["outside_window_at_start"] == expected["outside_window_at_start"]
    assert body["never_inside_before_end"] == expected["never_inside_before_end"]
    assert body["text"] == {"encoding": "GSM-7", "units": 11, "parts": 1}
    assert body["parts_total"] == expected["clients"]
    assert await db.scalar(text("SELECT count(*) FROM mailings")) == 0


async def test_preview_of_everyone_without_a_window(client: Api, db: AsyncSession) -> None:
    await _seed(db, 120)
    expected = _expected(await _directory(db), [], [])

    body = (await client.post(PREVIEW, json=_body(filter={}, send_window=None, text="Привет, " * 10))).json()

    assert body["clients"] == 120
    assert [(s["timezone"], s["clients"]) for s in body["by_timezone"]] == expected["by_timezone"]
    assert (body["outside_window_at_start"], body["never_inside_before_end"]) == (0, 0)
    assert body["text"] == {"encoding": "UCS-2", "units": 80, "parts": 2}
    assert body["parts_total"] == 240


@pytest.mark.parametrize(
    ("start_at", "end_at"),
    [
        pytest.param("9999-12-31T20:00:00Z", "9999-12-31T23:59:59Z", id="last-day"),
        pytest.param("0001-01-01T00:00:00Z", "0001-01-01T05:00:00Z", id="first-day"),
    ],
)
async def test_preview_at_the_ends_of_the_calendar_answers(
    client: Api, db: AsyncSession, start_at: str, end_at: str
) -> None:
    await _seed(db, 40)

    response = await client.post(PREVIEW, json=_body(filter={}, start_at=start_at, end_at=end_at))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["clients"] == 40
    # Zones whose local day falls outside the calendar are not judged: the figures are lower bounds.
    assert 0 <= body["never_inside_before_end"] <= body["outside_window_at_start"] <= 40


async def test_preview_of_a_filter_nobody_matches(client: Api, db: AsyncSession) -> None:
    await _seed(db, 10)

    body = (await client.post(PREVIEW, json=_body(filter={"operator_codes": ["000"]}))).json()

    assert body["clients"] == 0
    assert body["by_operator_code"] == body["by_timezone"] == []
    assert body["parts_total"] == 0


async def test_preview_keeps_the_twenty_largest_shares(client: Api, db: AsyncSession) -> None:
    codes = tuple(f"{900 + i}" for i in range(25))
    await _seed(db, 500, codes=codes)
    expected = _expected(await _directory(db), [], [])

    body = (await client.post(PREVIEW, json=_body(filter={}))).json()

    assert len(body["by_operator_code"]) == 20
    assert [(s["operator_code"], s["clients"]) for s in body["by_operator_code"]] == expected["by_operator_code"][:20]
    assert body["clients"] == 500


async def test_preview_of_an_existing_mailing_reads_its_own_fields(client: Api, db: AsyncSession) -> None:
    await _seed(db, 200)
    mailing = await create(client, **_body())

    existing = await client.get(f"{MAILINGS}/{mailing['id']}/preview")

    assert existing.status_code == 200, existing.text
    assert existing.json() == (await client.post(PREVIEW, json=_body())).json()
    assert await db.scalar(text("SELECT count(*) FROM messages")) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"text": "  "}, "text", id="blank-text"),
        pytest.param({"text": "x" * 1601}, "text", id="text-too-long"),
        pytest.param({"end_at": START.isoformat()}, "end_at", id="end-not-after-start"),
        pytest.param({"start_at": "2026-12-10T06:00:00"}, "start_at", id="naive-start"),
        pytest.param({"send_window": {"start": "09:00", "end": "09:00"}}, "send_window.end", id="empty-window"),
        pytest.param({"send_window": {"start": "25:00", "end": "09:00"}}, "send_window.start", id="bad-hour"),
        pytest.param({"filter": {"operator_codes": ["91"]}}, "filter.operator_codes[0]", id="bad-code"),
        pytest.param({"budget": 10}, "budget", id="unknown-field"),
    ],
)
async def test_preview_refuses_bad_input_and_creates_nothing(
    client: Api, db: AsyncSession, overrides: dict[str, Any], field: str
) -> None:
    assert_problem(await client.post(PREVIEW, json=_body(**overrides)), 400, field)
    assert await db.scalar(text("SELECT count(*) FROM mailings")) == 0


async def test_preview_of_an_unknown_or_invalid_mailing(client: Api) -> None:
    assert_problem(await client.get(f"{MAILINGS}/{MISSING_ID}/preview"), 404)
    assert_problem(await client.get(f"{MAILINGS}/0/preview"), 400, "mailing_id")


async def test_preview_needs_a_token(client: Api) -> None:
    assert_problem(await client.post(PREVIEW, json=_body(), headers={"Authorization": ""}), 401)
    assert_problem(await client.get(f"{MAILINGS}/1/preview", headers={"Authorization": ""}), 401)
