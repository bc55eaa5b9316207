"""Schedules through the API: one call for "every day at 10:00 Moscow time for 7 days", the preview
before saving, pause, resume, edit, delete, and problem details on bad input."""

from __future__ import annotations

from typing import Any

from tests.api import Api
from tests.problems import assert_problem

SCHEDULES = "/api/v1/schedules"


def schedule_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Morning deals",
        "text": "Deals of the day",
        "rrule": "FREQ=DAILY;COUNT=7",
        "kind": "service",
        "starts": "2036-12-05T10:00",
        "timezone": "Europe/Moscow",
        "duration_minutes": 120,
        **fields,
    }


async def test_every_day_at_ten_moscow_time_for_seven_days_is_one_call(client: Api) -> None:
    created = await client.post(SCHEDULES, json=schedule_body(filter={"tags": ["vip"]}))
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["status"] == "active"
    assert schedule["starts"] == "2036-12-05T10:00"
    assert schedule["next_occurrences"][:2] == ["2036-12-05T07:00:00Z", "2036-12-06T07:00:00Z"]
    fetched = (await client.get(f"{SCHEDULES}/{schedule['id']}")).json()
    assert fetched == schedule
    assert (await client.get(SCHEDULES)).json()["total"] == 1
    audit = (await client.get("/api/v1/audit", params={"entity": "schedule"})).json()["items"]
    assert [entry["action"] for entry in audit] == ["create"]


async def test_the_preview_shows_the_next_occurrences_and_saves_nothing(client: Api) -> None:
    preview = await client.post(f"{SCHEDULES}/preview", params={"count": 10}, json=schedule_body())
    assert preview.status_code == 200, preview.text
    occurrences = preview.json()["occurrences"]
    assert len(occurrences) == 7
    assert occurrences[0] == {
        "starts_at": "2036-12-05T07:00:00Z",
        "ends_at": "2036-12-05T09:00:00Z",
        "local_start": "2036-12-05T10:00:00",
    }
    assert (await client.get(SCHEDULES)).json()["total"] == 0


async def test_bad_schedules_are_refused_naming_the_field(client: Api) -> None:
    cases = [
        (schedule_body(rrule="FREQ=MINUTELY"), "rrule"),
        (schedule_body(rrule="FREQ=DAILY;BYDAY=XX"), "rrule"),
        (schedule_body(starts="2036-02-30T10:00"), "starts"),
        (schedule_body(starts="tomorrow"), "starts"),
        (schedule_body(timezone="Mars/Olympus"), "timezone"),
        (schedule_body(duration_minutes=0), "duration_minutes"),
        (schedule_body(text=" "), "text"),
        (schedule_body(send_window={"start": "09:00", "end": "09:00"}), "send_window.end"),
        (schedule_body(audience_id=12345), "audience_id"),
        (schedule_body(unknown=1), "unknown"),
    ]
    for body, field in cases:
        assert_problem(await client.post(SCHEDULES, json=body), 400, field)
        assert_problem(await client.post(f"{SCHEDULES}/preview", json=body), 400, field)
    assert (await client.get(SCHEDULES)).json()["total"] == 0
    assert_problem(await client.get(f"{SCHEDULES}/77"), 404)


async def test_pause_resume_edit_and_delete(client: Api) -> None:
    schedule = (await client.post(SCHEDULES, json=schedule_body())).json()
    url = f"{SCHEDULES}/{schedule['id']}"
    paused = (await client.post(f"{url}/pause")).json()
    assert paused["status"] == "paused"
    assert paused["paused_at"] is not None
    assert (await client.post(f"{url}/resume")).json()["status"] == "active"
    edited = await client.patch(url, json={"rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=2", "text": "Weekly"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["next_occurrences"] == ["2036-12-08T07:00:00Z", "2036-12-15T07:00:00Z"]
    assert_problem(await client.patch(url, json={"timezone": "Nowhere"}), 400, "timezone")
    assert (await client.delete(url)).status_code == 204
    assert_problem(await client.get(url), 404)
    actions = [e["action"] for e in (await client.get("/api/v1/audit", params={"entity": "schedule"})).json()["items"]]
    assert sorted(actions) == ["create", "delete", "pause", "resume", "update"]


async def test_a_schedule_whose_rule_has_ended_is_finished(client: Api) -> None:
    schedule = (
        await client.post(SCHEDULES, json=schedule_body(starts="2020-01-01T10:00", rrule="FREQ=DAILY;COUNT=2"))
    ).json()
    assert schedule["status"] == "finished"
    assert schedule["next_occurrences"] == []
