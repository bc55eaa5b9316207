"""What the console's pages show, checked against rows put in the database."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.messages.state import state
from notification.stats.retention import purge_expired_messages
from tests.conftest import API_TOKEN
from tests.console_client import Console

API = {"Authorization": f"Bearer {API_TOKEN}"}
MOSCOW = ZoneInfo("Europe/Moscow")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


def _row(section: str, status: str) -> list[str]:
    row = re.search(rf'<tr data-status="{status}">(.*?)</tr>', section, re.S)
    assert row, f"no row for {status}"
    return [
        html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]


async def _clients(console: Console, count: int, **fields: str) -> list[int]:
    rows = [{"phone": str(79_500_000_000 + i), "timezone": "UTC", **fields} for i in range(count)]
    response = await console.client.post("/api/v1/clients/bulk", json=rows, headers=API)
    assert response.status_code == 201, response.text
    return [c["id"] for c in response.json()]


async def _mailing(db: AsyncSession, start: dt.datetime, end: dt.datetime, planned: bool = True) -> int:
    mailing_id = (
        await db.execute(
            text(
                "INSERT INTO mailings (text, encoding, parts, start_at, end_at, planned_version, planned_at)"
                " VALUES ('Spring sale', 'GSM-7', 1, :start, :end, :planned, CASE WHEN :planned = 1 THEN now() END)"
                " RETURNING id"
            ),
            {"start": start, "end": end, "planned": 1 if planned else 0},
        )
    ).scalar_one()
    await db.commit()
    return int(mailing_id)


async def _messages(db: AsyncSession, mailing_id: int, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        await db.execute(
            text(
                "INSERT INTO messages"
                " (mailing_id, client_id, status, sent_at, due_at, attempts, last_error, error_kind)"
                " VALUES (:mailing_id, :client_id, :status, :sent_at, :due_at, :attempts, :last_error, :error_kind)"
            ),
            {
                "mailing_id": mailing_id,
                "sent_at": None,
                "due_at": _now(),
                "attempts": 1,
                "last_error": None,
                "error_kind": None,
                **row,
            },
        )
    await db.commit()


async def test_the_dashboard_shows_counts_queue_errors_and_the_send_rate(console: Console, db: AsyncSession) -> None:
    clients = await _clients(console, 6)
    now = _now()
    running = await _mailing(db, now - dt.timedelta(minutes=30), now + dt.timedelta(hours=1))
    await _mailing(db, now + dt.timedelta(days=2), now + dt.timedelta(days=3), planned=False)
    recent = (now - dt.timedelta(minutes=5)).replace(second=10)
    await _messages(
        db,
        running,
        [
            {"client_id": clients[0], "status": "sent", "sent_at": recent},
            {"client_id": clients[1], "status": "sent", "sent_at": recent + dt.timedelta(seconds=20)},
            {"client_id": clients[2], "status": "sent", "sent_at": now - dt.timedelta(minutes=90)},
            {"client_id": clients[3], "status": "failed", "last_error": "HTTP 400: rejected", "error_kind": "http_4xx"},
            {
                "client_id": clients[4],
                "status": "pending",
                "last_error": "timeout after 2.0 s",
                "error_kind": "timeout",
                "due_at": now + dt.timedelta(seconds=30),
            },
            {
                "client_id": clients[5],
                "status": "expired",
                "last_error": "timeout after 2.0 s",
                "error_kind": "timeout",
                "due_at": now - dt.timedelta(hours=2),
            },
        ],
    )
    # A job due a minute ago that no worker took: the queue's depth and lag.
    await console.client.post(
        "/api/v1/mailings",
        json={
            "text": "x",
            "kind": "service",
            "start_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "end_at": (now + dt.timedelta(hours=1)).isoformat(),
        },
        headers=API,
    )

    page = (await console.get("/admin")).text
    messages = _section(page, "messages-by-status")
    assert _row(messages, "sent") == ["sent", "3", "3"]
    assert _row(messages, "pending") == ["pending", "1", "1"]
    assert _row(messages, "failed") == ["failed", "1", "1"]
    assert _row(messages, "total") == ["total", "6", "6"]
    mailings = _section(page, "mailings-by-status")
    assert _row(mailings, "running") == ["running", "2"]
    assert _row(mailings, "scheduled") == ["scheduled", "1"]
    queue = _section(page, "queue")
    # The API enqueues by task name only, on the default queue.
    assert re.search(r"<td>default</td><td class=\"num\">1</td>", queue)
    assert re.search(r'id="queue-lag">(\d+ s|1 min \d\d s)<', queue)
    errors = _section(page, "errors")
    # The expired message fell due two hours ago: not in the last hour.
    assert re.findall(r"<code>(\w+)</code></td><td class=\"num\">(\d+)<", errors) == [
        ("http_4xx", "1"),
        ("timeout", "1"),
    ]
    hour = _section(page, "rate-hour")
    assert "2 sent · peak 2/min" in hour
    minute = recent.astimezone(MOSCOW).strftime("%H:%M")
    assert f"<title>{minute}: 2 sent</title>" in hour
    assert "3 sent · peak 2/min" in _section(page, "rate-day")

    figures = await console.get("/admin", headers={"HX-Request": "true", "HX-Target": "figures"})
    assert figures.text.startswith('<div id="figures" hx-get="/admin" hx-trigger="every 5s"')
    assert "<html" not in figures.text


async def test_a_mailing_page_shows_progress_and_pages_through_its_messages(console: Console, db: AsyncSession) -> None:
    clients = await _clients(console, 60)
    now = _now()
    mailing_id = await _mailing(db, now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1))
    rows = [
        {
            "client_id": c,
            "status": "sent" if i < 45 else ("failed" if i < 50 else "pending"),
            "sent_at": now if i < 45 else None,
            "last_error": "HTTP 400: no" if 45 <= i < 50 else None,
            "error_kind": "http_4xx" if 45 <= i < 50 else None,
        }
        for i, c in enumerate(clients)
    ]
    await _messages(db, mailing_id, rows)

    page = (await console.get(f"/admin/mailings/{mailing_id}")).text
    progress = _section(page, "progress")
    assert 'hx-trigger="every 2s"' in progress
    assert 'id="sent-share">75 % sent<' in progress
    assert 'id="mailing-status">running<' in progress
    assert re.search(r'data-status="pending"><span class="swatch pending"></span>pending <strong>10</strong>', progress)
    assert '<code>http_4xx</code></td><td class="num">5<' in progress
    messages = _section(page, "messages")
    assert "page 1 of 2 · 60 messages" in messages
    assert len(re.findall(r"<tr data-message-id=", messages)) == 50
    assert ">79500000000</a>" in messages

    failed = _section((await console.get(f"/admin/mailings/{mailing_id}?status=failed")).text, "messages")
    assert len(re.findall(r"<tr data-message-id=", failed)) == 5
    assert failed.count('<span class="badge failed">failed</span>') == 5
    assert "HTTP 400: no" in failed
    second = _section((await console.get(f"/admin/mailings/{mailing_id}?page=2")).text, "messages")
    assert len(re.findall(r"<tr data-message-id=", second)) == 10

    # Once nothing is pending, the mailing is finished and the page stops polling.
    await db.execute(text("UPDATE messages SET status = 'cancelled' WHERE status = 'pending'"))
    await db.commit()
    final = (
        await console.get(f"/admin/mailings/{mailing_id}", headers={"HX-Request": "true", "HX-Target": "progress"})
    ).text
    assert final.startswith('<section class="panel" id="progress"')
    assert 'id="mailing-status">finished<' in final
    assert "hx-trigger" not in final.split(">", 1)[0]


async def test_the_console_and_the_api_list_as_many_messages_once_retention_has_deleted_some(
    console: Console, db: AsyncSession, settings: Settings
) -> None:
    clients = await _clients(console, 130)
    now = _now()
    mailing_id = await _mailing(db, now - dt.timedelta(days=41), now - dt.timedelta(days=40))
    rows = [
        {"client_id": c, "status": "sent" if i < 10 else "failed", "sent_at": now if i < 10 else None}
        for i, c in enumerate(clients)
    ]
    await _messages(db, mailing_id, rows)
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        # Marked, then stopped after one batch of 20: the counters keep 10 sent and 120 failed.
        report = await purge_expired_messages(conn, retention_days=30, budget_s=0)
        assert (report.mailings_marked, report.messages_deleted) == (1, 0)
        batch = {"mailing_id": mailing_id, "after": 0, "batch": 20}
        deleted = await (await conn.execute(state["purge_batch"], batch)).fetchone()
        assert deleted is not None
        assert deleted[0] == 20
        by_status = "SELECT status, count(*) FROM messages WHERE mailing_id = %s GROUP BY 1"
        left = dict(await (await conn.execute(by_status, [mailing_id])).fetchall())
    assert left == {"failed": 110}

    for status in (None, "failed"):
        query = f"?status={status}" if status else ""
        api = (await console.client.get(f"/api/v1/mailings/{mailing_id}/stats{query}", headers=API)).json()
        page = _section((await console.get(f"/admin/mailings/{mailing_id}{query}")).text, "messages")
        assert (api["messages"]["total"], api["by_status"]["failed"]) == (110, 120), status
        assert "page 1 of 3 · 110 messages" in page, status


async def test_the_mailing_list_filters_by_status_and_shows_the_audience(console: Console, db: AsyncSession) -> None:
    await _clients(console, 4, tag="vip")
    now = _now()
    ended = await _mailing(db, now - dt.timedelta(days=2), now - dt.timedelta(days=1))
    future = await _mailing(db, now + dt.timedelta(days=1), now + dt.timedelta(days=2), planned=False)
    listing = (await console.get("/admin/mailings")).text
    assert re.search(r'status=finished" class="">finished <span class="muted">1</span>', listing)
    assert re.search(r'status=scheduled" class="">scheduled <span class="muted">1</span>', listing)
    finished = (await console.get("/admin/mailings?status=finished")).text
    assert f'data-mailing-id="{ended}"' in finished
    assert f'data-mailing-id="{future}"' not in finished
    scheduled = (await console.get("/admin/mailings?status=scheduled")).text
    row = scheduled.split(f'data-mailing-id="{future}"', 1)[1].split("</tr>", 1)[0]
    # Not planned yet: its audience is the clients its filter (everyone) matches now.
    assert '<td class="num">4</td>' in row


async def test_the_client_search_pages_newest_first_and_back(console: Console) -> None:
    ids = await _clients(console, 120, tag="vip")
    newest_first = sorted(ids, reverse=True)

    def shown(page: str) -> list[int]:
        return [int(i) for i in re.findall(r'<tr data-client-id="(\d+)"', page)]

    def link(page: str, rel: str) -> str:
        found = re.search(rf'href="(/admin/clients\?[^"]+)" rel="{rel}"', page)
        assert found, f"no {rel} link"
        return html.unescape(found.group(1))

    first = (await console.get("/admin/clients")).text
    assert "120 clients match." in first
    assert "newest first" in first
    assert shown(first) == newest_first[:50]
    assert 'rel="prev"' not in first
    second = (await console.get(link(first, "next"))).text
    assert shown(second) == newest_first[50:100]
    third = (await console.get(link(second, "next"))).text
    assert shown(third) == newest_first[100:]
    assert 'rel="next"' not in third
    back = (await console.get(link(third, "prev"))).text
    assert shown(back) == newest_first[50:100]
    assert shown((await console.get(link(back, "prev"))).text) == newest_first[:50]

    # A phone search lists numbers in order, and pages the same way.
    by_phone = (await console.get("/admin/clients", params={"phone_prefix": "795", "tag": "vip"})).text
    assert "120 clients match." in by_phone
    assert "by phone number" in by_phone
    phones = re.findall(r'<td class="mono">(\d+)</td>', by_phone)
    assert phones == [str(79_500_000_000 + i) for i in range(50)]
    following = (await console.get(link(by_phone, "next"))).text
    assert re.findall(r'<td class="mono">(\d+)</td>', following) == [str(79_500_000_000 + i) for i in range(50, 100)]

    narrowed = (await console.get("/admin/clients", params={"phone_prefix": "7950000011", "tag": "vip"})).text
    assert "10 clients match." in narrowed
    assert 'rel="next"' not in narrowed
