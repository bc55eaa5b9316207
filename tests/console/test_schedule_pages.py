"""Audience and schedule pages of the console over HTTP: forms with their errors beside the field,
CSRF, admins change and viewers only look, a 409 shown on the deletion page."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import API_TOKEN
from tests.console_client import Console, become_viewer


async def _count(db: AsyncSession, table: str) -> int:
    total = await db.scalar(text(f"SELECT count(*) FROM {table}"))
    await db.rollback()
    return int(total or 0)


SCHEDULE_FORM = {
    "name": "Mornings",
    "text": "Good morning",
    "rrule": "FREQ=DAILY;COUNT=7",
    "starts": "2036-12-05T10:00",
    "timezone": "Europe/Moscow",
    "duration_minutes": "60",
    "audience_id": "",
}


async def test_an_admin_manages_audiences_and_sees_a_409_when_one_is_in_use(console: Console, db: AsyncSession) -> None:
    await db.execute(
        text("INSERT INTO clients (phone, operator_code, tag, timezone) VALUES ('79160000001', '916', 'vip', 'UTC')")
    )
    await db.commit()
    form = await console.get("/admin/audiences/new")
    assert form.status_code == 200
    assert 'value="916"' in form.text  # the pickers come from the facets
    blank = await console.post("/admin/audiences", {"name": " ", "tags": "vip"})
    assert blank.status_code == 400
    assert 'id="error-name"' in blank.text
    created = await console.post("/admin/audiences", {"name": "VIP", "tags": "vip"})
    assert created.status_code == 200, created.text
    assert "VIP" in (await console.get("/admin/audiences")).text
    audience_id = await db.scalar(text("SELECT id FROM audiences"))
    await db.rollback()

    schedule = await console.post("/admin/schedules", {**SCHEDULE_FORM, "audience_id": str(audience_id)})
    assert schedule.status_code == 200, schedule.text
    refused = await console.post(f"/admin/audiences/{audience_id}/delete")
    assert refused.status_code == 409
    assert 'id="delete-problem"' in refused.text
    assert await _count(db, "audiences") == 1


async def test_the_schedule_form_shows_errors_beside_the_field_and_its_next_occurrences(
    console: Console, db: AsyncSession
) -> None:
    wrong = await console.post("/admin/schedules", {**SCHEDULE_FORM, "rrule": "FREQ=MINUTELY", "timezone": "Mars/Base"})
    assert wrong.status_code == 400
    assert 'id="error-rrule"' in wrong.text or 'id="error-timezone"' in wrong.text
    assert await _count(db, "schedules") == 0
    preview = await console.get("/admin/schedules/preview", params=SCHEDULE_FORM)
    assert preview.status_code == 200
    assert preview.text.count("<li") == 5
    assert "2036-12-05 10:00 Europe/Moscow" in preview.text
    saved = await console.post("/admin/schedules", SCHEDULE_FORM)
    assert saved.status_code == 200, saved.text
    assert "Schedule 1: Mornings" in saved.text
    assert 'id="occurrence-total"' in saved.text
    paused = await console.post("/admin/schedules/1/pause")
    assert 'id="schedule-status">paused' in paused.text


async def test_forms_without_the_csrf_token_are_refused(console: Console, db: AsyncSession) -> None:
    for path in ["/admin/audiences", "/admin/schedules", "/admin/operator-codes"]:
        refused = await console.client.post(path, data={"name": "x"})
        assert refused.status_code == 403, path
    assert await _count(db, "audiences") + await _count(db, "schedules") == 0


async def test_a_viewer_sees_audiences_and_schedules_but_cannot_change_them(console: Console, db: AsyncSession) -> None:
    await console.post("/admin/schedules", SCHEDULE_FORM)
    await become_viewer(console, db)
    for path in ["/admin/audiences", "/admin/schedules", "/admin/schedules/1", "/admin/operator-codes"]:
        shown = await console.get(path)
        assert shown.status_code == 200, path
        assert "New schedule" not in shown.text
        assert "Pause</button>" not in shown.text
    for path in ["/admin/audiences/new", "/admin/schedules/new", "/admin/schedules/1/edit"]:
        assert (await console.get(path)).status_code == 403, path
    for path in ["/admin/audiences", "/admin/schedules", "/admin/schedules/1/pause", "/admin/operator-codes"]:
        assert (await console.post(path, {"name": "x", "code": "916"})).status_code == 403, path
    assert await _count(db, "schedules") == 1
    assert await _count(db, "operator_code_names") == 0


async def test_operator_codes_are_named_in_the_console(console: Console, db: AsyncSession) -> None:
    named = await console.post("/admin/operator-codes", {"code": "916", "name": "MTS"})
    assert named.status_code == 200
    assert "MTS" in named.text
    wrong = await console.post("/admin/operator-codes", {"code": "91x", "name": "MTS"})
    assert wrong.status_code == 400
    assert 'id="error-code"' in wrong.text
    await console.post("/admin/operator-codes", {"code": "916", "name": ""})
    assert await _count(db, "operator_code_names") == 0


async def test_a_mailing_on_a_saved_audience_counts_and_previews_who_the_audience_matches(
    console: Console, db: AsyncSession
) -> None:
    await db.execute(
        text(
            "INSERT INTO clients (phone, operator_code, tag, timezone) VALUES"
            " ('79160000001', '916', 'vip', 'UTC'), ('79160000002', '916', '', 'UTC'),"
            " ('79160000003', '916', '', 'UTC')"
        )
    )
    await db.commit()
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    audience = await console.client.post(
        "/api/v1/audiences", json={"name": "VIP", "filter": {"tags": ["vip"]}}, headers=api
    )
    assert audience.status_code == 201, audience.text
    mailing = await console.client.post(
        "/api/v1/mailings",
        json={
            "text": "For the few",
            "kind": "service",
            "start_at": "2036-12-05T10:00:00Z",
            "end_at": "2036-12-05T12:00:00Z",
            "audience_id": audience.json()["id"],
        },
        headers=api,
    )
    assert mailing.status_code == 201, mailing.text
    mailing_id = mailing.json()["id"]

    # Not planned yet: its figures are who the audience matches now, one client, not all three.
    page = await console.get(f"/admin/mailings/{mailing_id}")
    assert '<strong id="audience">1</strong>' in page.text
    listed = await console.get("/admin/mailings")
    assert listed.status_code == 200
    row = next(line for line in listed.text.split("<tr") if f"/admin/mailings/{mailing_id}" in line)
    assert '<td class="num">1</td>' in row
    preview = await console.get(f"/admin/mailings/{mailing_id}/preview")
    assert '<dd id="preview-clients">1</dd>' in preview.text
