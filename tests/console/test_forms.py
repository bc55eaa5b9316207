"""Every console form against bad input: the error shows beside its field, nothing is written;
forged or stale forms get 403; unknown ids a 404 page."""

from __future__ import annotations

import datetime as dt
import html as html_text
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import count_rows
from tests.conftest import API_TOKEN
from tests.console_client import MOSCOW, Console, become_viewer, local_input, mailing_form

API = {"Authorization": f"Bearer {API_TOKEN}"}


def _error_beside(html: str, field: str) -> str:
    found = re.search(rf'<div class="error" id="error-{re.escape(field)}">([^<]*)</div>', html)
    assert found, f"no error shown beside {field}"
    return html_text.unescape(found.group(1))


async def _add_clients(console: Console, *rows: dict[str, str]) -> list[dict[str, Any]]:
    response = await console.client.post("/api/v1/clients/bulk", json=list(rows), headers=API)
    assert response.status_code == 201, response.text
    created: list[dict[str, Any]] = response.json()
    return created


# -- mailings ----------------------------------------------------------------------------------


BAD_MAILINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"text": ""}, "text", "Expected str of length >= 1"),
    ({"text": "x" * 1601}, "text", "Expected str of length <= 1600"),
    ({"text": "   "}, "text", "must not be blank"),
    ({"end_at": local_input(dt.datetime.now(dt.UTC))}, "end_at", "must be after start_at"),
    ({"start_at": ""}, "start_at", "Expected datetime, got null"),
    ({"start_at": "tomorrow"}, "start_at", "Invalid RFC3339 encoded datetime"),
    ({"window_start": "09:00"}, "send_window-end", "Expected str of length >= 5"),
    ({"window_start": "09:00", "window_end": "09:00"}, "send_window-end", "must differ from send_window.start"),
    ({"window_start": "25:00", "window_end": "09:00"}, "send_window-start", "Expected str matching regex"),
    ({"operator_codes": ["91"]}, "filter-operator_codes", "Expected str of length >= 3"),
]


async def test_a_bad_mailing_is_refused_beside_its_field(console: Console, db: AsyncSession) -> None:
    for overrides, field, message in BAD_MAILINGS:
        response = await console.post("/admin/mailings", mailing_form(**overrides))
        assert response.status_code == 400, overrides
        assert _error_beside(response.text, field).startswith(message), overrides
        # What was typed is still there to correct.
        assert "Winter sale" in response.text or "text" in overrides, overrides
    assert await count_rows(db, "mailings") == 0


async def test_the_same_rule_refuses_the_same_mailing_in_the_api(console: Console) -> None:
    now = dt.datetime.now(dt.UTC)
    body = {
        "text": "Hi",
        "kind": "service",
        "start_at": now.isoformat(),
        "end_at": (now - dt.timedelta(hours=1)).isoformat(),
    }
    api = await console.client.post("/api/v1/mailings", json=body, headers=API)
    page = await console.post(
        "/admin/mailings", mailing_form(start_at=local_input(now), end_at=local_input(now - dt.timedelta(hours=1)))
    )
    assert api.status_code == page.status_code == 400
    assert api.json()["errors"] == [{"field": "end_at", "message": _error_beside(page.text, "end_at")}]


async def test_a_mailing_created_through_the_form_is_planned_and_shown(console: Console, db: AsyncSession) -> None:
    await _add_clients(
        console,
        {"phone": "79160000001", "timezone": "UTC", "tag": "vip"},
        {"phone": "79160000002", "timezone": "UTC", "tag": "new"},
        {"phone": "79030000003", "timezone": "UTC", "tag": "vip"},
    )
    audience = await console.get("/admin/mailings/audience", params={"operator_codes": ["916"], "tags": ["vip"]})
    assert "1 client match this filter now" in audience.text

    form = mailing_form(operator_codes=["916", "903"], tags=["vip"], window_start="09:00", window_end="21:00")
    response = await console.post("/admin/mailings", form, follow_redirects=False)
    assert response.status_code == 303
    mailing_id = int(response.headers["location"].rsplit("/", 1)[1])
    page = await console.get(response.headers["location"])
    assert f"Mailing {mailing_id} created." in page.text
    assert "scheduled" in page.text
    assert "903, 916" in page.text
    assert "09:00 to 21:00" in page.text
    assert 'id="audience">2<' in page.text
    jobs = (
        await db.execute(text("SELECT args FROM procrastinate_jobs WHERE task_name = 'delivery:plan_mailing'"))
    ).all()
    await db.commit()
    assert [row.args["mailing_id"] for row in jobs] == [mailing_id]
    # Start and end were read in the operator's zone (Moscow, UTC+3).
    stored = (await db.execute(text("SELECT start_at FROM mailings"))).scalar_one()
    await db.commit()
    assert stored == dt.datetime.fromisoformat(form["start_at"]).replace(tzinfo=MOSCOW)


async def test_changing_a_mailing_validates_and_saves(console: Console, db: AsyncSession) -> None:
    created = await console.post("/admin/mailings", mailing_form(), follow_redirects=False)
    path = created.headers["location"]
    edit = await console.get(f"{path}/edit")
    assert "Winter sale" in edit.text
    refused = await console.post(path, mailing_form(text=""))
    assert refused.status_code == 400
    assert _error_beside(refused.text, "text").startswith("Expected str of length >= 1")
    saved = await console.post(path, mailing_form(text="Summer sale"))
    assert saved.status_code == 200
    assert "Summer sale" in saved.text
    assert (await db.execute(text("SELECT text FROM mailings"))).scalar_one() == "Summer sale"


async def test_deleting_a_mailing_says_what_happens_then_does_it(console: Console, db: AsyncSession) -> None:
    created = await console.post("/admin/mailings", mailing_form(), follow_redirects=False)
    path = created.headers["location"]
    confirm = await console.get(f"{path}/delete")
    assert "It has not started: nothing will be sent." in confirm.text
    done = await console.post(f"{path}/delete")
    assert done.status_code == 200
    assert "deleted." in done.text
    assert await count_rows(db, "mailings") == 0


# -- clients -----------------------------------------------------------------------------------


BAD_CLIENTS: list[tuple[dict[str, str], str, str, int]] = [
    ({"phone": "89160000001"}, "phone", "Expected str matching regex", 400),
    ({"phone": ""}, "phone", "Expected str of length >= 11", 400),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone 'Mars/Olympus'", 400),
    ({"timezone": ""}, "timezone", "unknown IANA time zone ''", 400),
    ({"operator_code": "12"}, "operator_code", "Expected str of length >= 3", 400),
    ({"tag": "t" * 101}, "tag", "Expected str of length <= 100", 400),
    ({"phone": "79990000000"}, "phone", "a client with phone 79990000000 already exists", 409),
]


async def test_a_bad_client_is_refused_beside_its_field(console: Console, db: AsyncSession) -> None:
    await _add_clients(console, {"phone": "79990000000", "timezone": "UTC"})
    for overrides, field, message, status in BAD_CLIENTS:
        form = {"phone": "79160000001", "timezone": "Europe/Moscow", "operator_code": "", "tag": "", **overrides}
        response = await console.post("/admin/clients", form)
        assert response.status_code == status, overrides
        assert _error_beside(response.text, field).startswith(message), overrides
    assert await count_rows(db, "clients") == 1


async def test_a_client_is_added_changed_and_deleted(console: Console, db: AsyncSession) -> None:
    added = await console.post("/admin/clients", {"phone": "79160000001", "timezone": "Europe/Moscow", "tag": "vip"})
    assert added.status_code == 200
    assert "Client 79160000001 added." in added.text
    assert "1 client match." in added.text
    client_id = (await db.execute(text("SELECT id FROM clients"))).scalar_one()
    await db.commit()
    # The operator code defaults from the phone, as in the API.
    assert ">916<" in added.text

    taken = await _add_clients(console, {"phone": "79030000002", "timezone": "UTC"})
    clash = await console.post(f"/admin/clients/{client_id}", {"phone": "79030000002", "timezone": "UTC"})
    assert clash.status_code == 409
    assert _error_beside(clash.text, "phone") == "a client with phone 79030000002 already exists"
    saved = await console.post(f"/admin/clients/{client_id}", {"phone": "79160000009", "timezone": "UTC", "tag": "new"})
    assert "Client 79160000009 saved." in saved.text
    row = (await db.execute(text("SELECT phone, tag, timezone FROM clients WHERE id = :id"), {"id": client_id})).one()
    await db.commit()
    assert tuple(row) == ("79160000009", "new", "UTC")

    confirm = await console.get(f"/admin/clients/{taken[0]['id']}/delete")
    assert "No message is waiting for this client." in confirm.text
    deleted = await console.post(f"/admin/clients/{taken[0]['id']}/delete")
    assert "Client 79030000002 deleted." in deleted.text
    assert await count_rows(db, "clients") == 1


async def test_a_bad_search_is_refused_beside_its_field(console: Console) -> None:
    response = await console.get("/admin/clients", params={"phone_prefix": "7a"})
    assert response.status_code == 400
    assert _error_beside(response.text, "phone_prefix").startswith("Expected str matching regex")
    assert "No client matches." in response.text


# -- forged forms, unknown ids, bad parameters -------------------------------------------------


async def test_a_form_without_the_right_csrf_token_is_refused(console: Console, db: AsyncSession) -> None:
    for token in ["", "0" * 64, "forged"]:
        data = {"_csrf_token": token, "phone": "79160000001", "timezone": "UTC"}
        response = await console.post("/admin/clients", data)
        assert response.status_code == 403, token
        assert "The form was not accepted" in response.text
    assert await count_rows(db, "clients") == 0


async def test_an_htmx_request_without_the_csrf_header_is_refused(console: Console, db: AsyncSession) -> None:
    response = await console.client.post(
        "/admin/mailings", data=mailing_form(), headers={"HX-Request": "true", "X-CSRFToken": "nope"}
    )
    assert response.status_code == 403
    assert await count_rows(db, "mailings") == 0


UNKNOWN_IDS = [
    ("get", "/admin/mailings/424242"),
    ("get", "/admin/mailings/424242/edit"),
    ("get", "/admin/mailings/424242/delete"),
    ("post", "/admin/mailings/424242"),
    ("post", "/admin/mailings/424242/delete"),
    ("get", "/admin/clients/424242/edit"),
    ("get", "/admin/clients/424242/delete"),
    ("post", "/admin/clients/424242"),
    ("post", "/admin/clients/424242/delete"),
]


async def test_an_unknown_id_is_a_404_page(console: Console) -> None:
    for method, path in UNKNOWN_IDS:
        if method == "get":
            response = await console.get(path)
        else:
            response = await console.post(path, mailing_form() if "mailings" in path else {"phone": "79160000001"})
        assert response.status_code == 404, path
        assert "text/html" in response.headers["content-type"]
        what = "mailing" if "mailings" in path else "client"
        assert f"There is no {what} 424242" in response.text, path


async def test_a_bad_query_parameter_is_a_400_page(console: Console) -> None:
    for path in ["/admin/mailings?status=lost", "/admin/mailings/1?status=lost", "/admin/mailings?page=0"]:
        response = await console.get(path)
        assert response.status_code == 400, path
        assert "Invalid request" in response.text


async def test_a_viewer_sees_but_cannot_change(console: Console, db: AsyncSession) -> None:
    await become_viewer(console, db)
    listing = await console.get("/admin/mailings")
    assert listing.status_code == 200
    assert "ann@example.com (viewer)" in listing.text
    assert "New mailing" not in listing.text
    for path in ["/admin/mailings/new", "/admin/clients/new", "/admin/clients/import"]:
        assert (await console.get(path)).status_code == 403, path
    refused = await console.post("/admin/clients", {"phone": "79160000001", "timezone": "UTC"})
    assert refused.status_code == 403
    assert "Your role may look but not change anything" in refused.text
    assert await count_rows(db, "clients") == 0


async def test_console_responses_forbid_other_hosts_and_framing(console: Console) -> None:
    response = await console.get("/admin")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    asset = await console.get("/admin/static/console.css")
    assert asset.headers["content-security-policy"] == policy


async def test_over_https_the_console_cookies_are_secure(app: Any) -> None:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app, base_url="https://console.example") as client:
        secure = Console(client)
        page = await client.get("/admin/sign-in")
        assert "Secure" in page.headers["set-cookie"]
        response = await secure.sign_in()
        assert response.status_code == 200
        signed_in = response.history[0].headers.get_list("set-cookie")
        assert all("Secure" in cookie for cookie in signed_in)


async def test_an_unknown_console_address_is_a_404_page(console: Console) -> None:
    response = await console.get("/admin/no/such/page")
    assert response.status_code == 404
    assert "There is no such page." in response.text
    assert (await console.get("/admin/static/console.css")).status_code == 200
    assert (await console.get("/admin")).status_code == 200
