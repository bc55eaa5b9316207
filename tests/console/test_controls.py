"""The operator controls of a mailing in the console, over HTTP: the same service calls as the API
(so the same audit rows), asking first, refusing bad input beside the field, admins only; and the
text's cost on the form measured by the server's own ``measure``."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.mailings.sms import measure
from tests.conftest import API_TOKEN
from tests.console_client import Console, become_viewer

API = {"Authorization": f"Bearer {API_TOKEN}"}
MOSCOW = ZoneInfo("Europe/Moscow")
# The text of the report: 71 characters, UCS-2, two parts per client.
SALE = "Скидка 20% для своих — только сегодня! Ответьте STOP, чтобы отписаться."
HTMX = {"HX-Request": "true"}


def _local(moment: dt.datetime) -> str:
    return moment.astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


async def _clients(console: Console, count: int) -> None:
    rows = [{"phone": str(79_500_000_000 + i), "timezone": "Europe/Moscow"} for i in range(count)]
    response = await console.client.post("/api/v1/clients/bulk", json=rows, headers=API)
    assert response.status_code == 201, response.text


async def _api_mailing(console: Console, start: dt.datetime, end: dt.datetime) -> int:
    body = {"text": "Winter sale", "kind": "service", "start_at": _iso(start), "end_at": _iso(end)}
    response = await console.client.post("/api/v1/mailings", json=body, headers=API)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _failed_messages(db: AsyncSession, mailing_id: int) -> None:
    await db.execute(
        text(
            "INSERT INTO messages (mailing_id, client_id, status, attempts, last_error, error_kind)"
            " SELECT :id, c.id, CASE WHEN c.id % 2 = 0 THEN 'failed' ELSE 'expired' END, 1, 'HTTP 400: no',"
            " 'http_4xx' FROM clients c"
        ),
        {"id": mailing_id},
    )
    await db.commit()


async def _audit(db: AsyncSession, mailing_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await db.execute(
        text("SELECT via, action, changes FROM audit_log WHERE entity = 'mailing' AND entity_id = :id ORDER BY id"),
        {"id": mailing_id},
    )
    found = [(r.via, r.action, r.changes) for r in rows]
    await db.commit()
    return found


def _text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


async def test_pause_resume_and_retry_write_what_the_api_writes(console: Console, db: AsyncSession) -> None:
    await _clients(console, 4)
    now = dt.datetime.now(dt.UTC)
    by_api = await _api_mailing(console, now - dt.timedelta(hours=2), now + dt.timedelta(hours=1))
    by_console = await _api_mailing(console, now - dt.timedelta(hours=2), now + dt.timedelta(hours=1))
    for mailing_id in (by_api, by_console):
        await _failed_messages(db, mailing_id)

    for action in ("pause", "resume"):
        assert (await console.client.post(f"/api/v1/mailings/{by_api}/{action}", headers=API)).status_code == 200
        confirm = await console.get(f"/admin/mailings/{by_console}/{action}")
        assert confirm.status_code == 200
        assert f"{action.capitalize()} mailing {by_console}?" in confirm.text
        assert 'id="consequence"' in confirm.text
        done = await console.post(f"/admin/mailings/{by_console}/{action}", follow_redirects=False)
        assert done.status_code == 303, done.text
    retried = await console.client.post(
        f"/api/v1/mailings/{by_api}/retry", json={"statuses": ["failed", "expired"]}, headers=API
    )
    assert retried.json()["requeued"] == 4
    done = await console.post(f"/admin/mailings/{by_console}/retry", {"statuses": ["failed", "expired"]})
    assert done.status_code == 200
    assert f"4 messages of mailing {by_console} will be sent again." in done.text

    api_rows, console_rows = await _audit(db, by_api), await _audit(db, by_console)
    assert [(action, changes.keys()) for _, action, changes in console_rows[1:]] == [
        (action, changes.keys()) for _, action, changes in api_rows[1:]
    ]
    assert [action for _, action, _ in console_rows] == ["create", "pause", "resume", "retry"]
    assert {via for via, _, _ in console_rows[1:]} == {"console"}
    assert console_rows[3][2] == api_rows[3][2]  # the same statuses, the same count re-queued
    pending = await db.execute(
        text("SELECT count(*) FROM messages WHERE mailing_id = :id AND status = 'pending'"), {"id": by_console}
    )
    assert pending.scalar_one() == 4
    await db.commit()


async def test_retrying_an_ended_mailing_asks_for_a_new_end_beside_the_field(
    console: Console, db: AsyncSession
) -> None:
    await _clients(console, 2)
    now = dt.datetime.now(dt.UTC)
    mailing_id = await _api_mailing(console, now - dt.timedelta(hours=3), now - dt.timedelta(hours=1))
    await _failed_messages(db, mailing_id)

    form = await console.get(f"/admin/mailings/{mailing_id}/retry")
    assert "a retry needs a new end in the future" in form.text
    offered = re.search(r'id="end_at" name="end_at" value="([^"]+)"', form.text)
    assert offered, "an ended mailing's form offers a new end"

    refused = await console.post(f"/admin/mailings/{mailing_id}/retry", {"statuses": ["failed"], "end_at": ""})
    assert refused.status_code == 400
    assert re.search(r'id="error-end_at">is required once the mailing has ended', refused.text)
    none_ticked = await console.post(f"/admin/mailings/{mailing_id}/retry", {"end_at": offered.group(1)})
    assert none_ticked.status_code == 400
    assert 'id="error-statuses"' in none_ticked.text
    assert [action for _, action, _ in await _audit(db, mailing_id)] == ["create"]

    new_end = _local(now + dt.timedelta(hours=5))
    done = await console.post(
        f"/admin/mailings/{mailing_id}/retry", {"statuses": ["failed"], "end_at": new_end}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    audited = await _audit(db, mailing_id)
    assert audited[-1][1] == "retry"
    assert set(audited[-1][2]) == {"statuses", "requeued", "end_at"}


async def test_a_test_send_shows_the_providers_answer_and_refuses_a_bad_phone(
    console: Console, db: AsyncSession
) -> None:
    now = dt.datetime.now(dt.UTC)
    mailing_id = await _api_mailing(console, now + dt.timedelta(hours=1), now + dt.timedelta(hours=2))
    bad = await console.post(f"/admin/mailings/{mailing_id}/test", {"phone": "12345"})
    assert bad.status_code == 400
    assert 'id="error-phone"' in bad.text
    # htmx swaps in a 2xx answer only: asked by htmx, the same error comes as one.
    bad = await console.post(f"/admin/mailings/{mailing_id}/test", {"phone": "12345"}, headers=HTMX)
    assert bad.status_code == 200
    assert 'id="error-phone"' in bad.text
    # Nobody listens at the provider's address in this test: the answer says the send failed.
    answer = await console.post(f"/admin/mailings/{mailing_id}/test", {"phone": "79160000009"}, headers=HTMX)
    assert answer.status_code == 200
    assert "Not sent to 79160000009: the provider answered nothing" in _text_of(answer.text)
    recorded = await db.execute(
        text("SELECT phone, outcome FROM test_sends WHERE mailing_id = :id"), {"id": mailing_id}
    )
    assert [tuple(r) for r in recorded] == [("79160000009", "transient")]
    await db.commit()


async def test_the_preview_shows_count_splits_window_reach_and_parts(console: Console) -> None:
    await _clients(console, 3)
    now = dt.datetime.now(dt.UTC)
    form = {
        "text": SALE,
        "start_at": _local(now + dt.timedelta(hours=1)),
        "end_at": _local(now + dt.timedelta(hours=2)),
    }
    before = _text_of((await console.post("/admin/mailings/preview", form, headers=HTMX)).text)
    assert "clients 3" in before
    assert "UCS-2, 71 units, 2 parts per message" in before
    assert "parts in all 6" in before
    assert "Europe/Moscow 3" in before
    assert "950 3" in before
    blank = _text_of((await console.post("/admin/mailings/preview", {**form, "text": " "}, headers=HTMX)).text)
    assert "Nothing to preview yet: text: must not be blank" in blank

    mailing_id = await _api_mailing(console, now + dt.timedelta(hours=1), now + dt.timedelta(hours=2))
    after = _text_of((await console.get(f"/admin/mailings/{mailing_id}/preview", headers=HTMX)).text)
    assert "clients 3" in after
    assert "GSM-7, 11 units, 1 part per message" in after


@pytest.mark.parametrize("typed", ["", "Hello", SALE, "x" * 161, "€" * 80, "😀" * 36])
async def test_the_text_cost_is_the_servers_measure(console: Console, typed: str) -> None:
    await _clients(console, 7)
    cost = _text_of((await console.post("/admin/mailings/measure", {"text": typed}, headers=HTMX)).text)
    if not typed:
        assert cost == "Type a text to see what it costs."
        return
    sms = measure(typed)
    plural = "" if sms.parts == 1 else "s"
    assert cost.startswith(f"{sms.encoding.value} · {sms.units:,} unit")
    assert f"{sms.parts} part{plural} per message · {sms.parts * 7:,} parts for the 7 clients matching now" in cost


async def test_the_sale_text_of_the_report_costs_two_parts_a_client(console: Console) -> None:
    await _clients(console, 968)
    cost = _text_of((await console.post("/admin/mailings/measure", {"text": SALE}, headers=HTMX)).text)
    assert cost == "UCS-2 · 71 units · 2 parts per message · 1,936 parts for the 968 clients matching now"
    form = await console.get("/admin/mailings/new")
    assert 'id="text-cost" hx-post="/admin/mailings/measure"' in form.text
    assert "delay:250ms" in form.text


async def test_the_live_refresh_carries_the_message_list_and_controls(console: Console, db: AsyncSession) -> None:
    await _clients(console, 4)
    now = dt.datetime.now(dt.UTC)
    mailing_id = await _api_mailing(console, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    first = await console.get(f"/admin/mailings/{mailing_id}?status=failed")
    assert f'hx-get="/admin/mailings/{mailing_id}?status=failed"' in first.text
    await _failed_messages(db, mailing_id)
    refresh = await console.get(
        f"/admin/mailings/{mailing_id}?status=failed", headers={**HTMX, "HX-Target": "progress"}
    )
    assert refresh.text.lstrip().startswith('<section class="panel" id="progress"')
    messages = refresh.text[refresh.text.index('id="messages"') :]
    assert messages.startswith('id="messages" hx-swap-oob="true"')
    assert len(re.findall(r"<tr data-message-id=", messages)) == 2  # the failed ones of the four
    assert 'id="mailing-actions" hx-swap-oob="true"' in refresh.text
    assert "Retry 4 failed or expired" in refresh.text


CONTROL_ROUTES = [
    ("GET", "/admin/mailings/{id}/pause"),
    ("POST", "/admin/mailings/{id}/pause"),
    ("GET", "/admin/mailings/{id}/resume"),
    ("POST", "/admin/mailings/{id}/resume"),
    ("GET", "/admin/mailings/{id}/retry"),
    ("POST", "/admin/mailings/{id}/retry"),
    ("POST", "/admin/mailings/{id}/test"),
    ("GET", "/admin/mailings/{id}/preview"),
    ("POST", "/admin/mailings/preview"),
    ("POST", "/admin/mailings/measure"),
]


async def test_a_viewer_sees_no_control_and_each_route_answers_403(console: Console, db: AsyncSession) -> None:
    await _clients(console, 2)
    now = dt.datetime.now(dt.UTC)
    mailing_id = await _api_mailing(console, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    await _failed_messages(db, mailing_id)
    as_admin = (await console.get(f"/admin/mailings/{mailing_id}")).text
    for control in ('id="controls"', 'id="pause"', 'id="retry"', 'id="test-send"', 'id="audience-preview"'):
        assert control in as_admin, control

    await become_viewer(console, db)
    as_viewer = (await console.get(f"/admin/mailings/{mailing_id}")).text
    assert "ann@example.com (viewer)" in as_viewer
    for control in ("controls", "pause", "resume", "retry", "test-send", "audience-preview", "mailing-actions"):
        assert f'id="{control}"' not in as_viewer, control
    refresh = await console.get(f"/admin/mailings/{mailing_id}", headers={**HTMX, "HX-Target": "progress"})
    assert 'id="mailing-actions"' not in refresh.text
    for method, path in CONTROL_ROUTES:
        url = path.format(id=mailing_id)
        answer = await (console.get(url) if method == "GET" else console.post(url, {"phone": "79160000009"}))
        assert answer.status_code == 403, (method, path)
    assert [action for _, action, _ in await _audit(db, mailing_id)] == ["create"]


async def test_a_control_posted_without_the_csrf_token_is_refused(console: Console, db: AsyncSession) -> None:
    now = dt.datetime.now(dt.UTC)
    mailing_id = await _api_mailing(console, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))
    for action in ("pause", "resume", "retry", "test"):
        refused = await console.client.post(f"/admin/mailings/{mailing_id}/{action}", data={"phone": "79160000009"})
        assert refused.status_code == 403, action
    assert [action for _, action, _ in await _audit(db, mailing_id)] == ["create"]
