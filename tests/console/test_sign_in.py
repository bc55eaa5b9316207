"""Signing in and out, sessions kept server-side, and what an anonymous visitor gets."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from tests.api import API_TOKEN, database_now
from tests.console_client import SESSION_COOKIE, Console, csrf_of
from tests.waiting import wait_for

CONSOLE_PAGES = [
    "/admin",
    "/admin/mailings",
    "/admin/mailings/new",
    "/admin/mailings/1",
    "/admin/mailings/1/edit",
    "/admin/mailings/1/delete",
    "/admin/mailings/audience",
    "/admin/clients",
    "/admin/clients/new",
    "/admin/clients/import",
    "/admin/clients/1/edit",
    "/admin/clients/1/delete",
]


async def _sessions(db: AsyncSession) -> list[tuple[str, dict[str, object]]]:
    rows = (await db.execute(text("SELECT session_id, data FROM console_sessions"))).all()
    await db.commit()
    return [(row.session_id, json.loads(row.data)) for row in rows]


async def test_every_console_page_sends_a_stranger_to_sign_in(anonymous: Console) -> None:
    for path in CONSOLE_PAGES:
        response = await anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/sign-in?next="), path


async def test_an_htmx_refresh_without_a_session_moves_the_whole_page_to_sign_in(anonymous: Console) -> None:
    response = await anonymous.get("/admin/mailings/7", headers={"HX-Request": "true", "HX-Target": "progress"})
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/admin/sign-in?next=%2Fadmin%2Fmailings%2F7"


async def test_a_form_sent_without_a_session_changes_nothing(anonymous: Console, db: AsyncSession) -> None:
    page = await anonymous.get("/admin/sign-in")
    anonymous.csrf = csrf_of(page.text)
    response = await anonymous.post(
        "/admin/clients", {"phone": "79160000001", "timezone": "UTC"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/sign-in")
    assert (await db.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 0


async def test_the_sign_in_page_and_assets_need_no_session_and_store_none(anonymous: Console, db: AsyncSession) -> None:
    page = await anonymous.get("/admin/sign-in")
    assert page.status_code == 200
    assert "API token" in page.text
    assert (await anonymous.get("/admin/static/console.css")).status_code == 200
    assert SESSION_COOKIE not in page.cookies
    assert await _sessions(db) == []


async def test_a_wrong_token_is_refused_beside_the_field(anonymous: Console, db: AsyncSession) -> None:
    response = await anonymous.sign_in(token="not-the-token")
    assert response.status_code == 400
    assert 'id="error-token">This token is not accepted.<' in response.text
    assert "not-the-token" not in response.text
    assert await _sessions(db) == []
    assert (await anonymous.get("/admin", follow_redirects=False)).status_code == 303


async def test_signing_in_keeps_the_identity_server_side_under_a_new_id(anonymous: Console, db: AsyncSession) -> None:
    # An id planted in the browser before sign-in (session fixation) must not become the session.
    anonymous.client.cookies.set(SESSION_COOKIE, "planted-by-someone-else", domain="testserver.local", path="/admin")
    response = await anonymous.sign_in()
    assert response.status_code == 200
    assert "Dashboard" in response.text
    assert "api-token:" in response.text

    sessions = await _sessions(db)
    assert len(sessions) == 1
    session_id, data = sessions[0]
    assert session_id != "planted-by-someone-else"
    assert anonymous.client.cookies.get(SESSION_COOKIE) == session_id
    # The actor names the token by the first 4 hex digits of its SHA-256, worked out here independently.
    actor = "api-token:" + hashlib.sha256(API_TOKEN.encode()).hexdigest()[:4]
    assert data["identity"] == {"actor": actor, "role": "admin", "method": "token"}
    assert actor in response.text
    assert data["timezone"] == "Europe/Moscow"
    assert API_TOKEN not in json.dumps(data)


async def test_session_cookie_is_httponly_lax_and_scoped_to_the_console(anonymous: Console) -> None:
    page = await anonymous.get("/admin/sign-in")
    anonymous.csrf = csrf_of(page.text)
    response = await anonymous.post("/admin/sign-in", {"token": API_TOKEN}, follow_redirects=False)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test


async def test_sign_out_ends_the_session_in_the_database(console: Console, db: AsyncSession) -> None:
    assert len(await _sessions(db)) == 1
    response = await console.post("/admin/sign-out")
    assert response.status_code == 200
    assert "Sign in to the console" in response.text
    assert await _sessions(db) == []
    assert (await console.get("/admin", follow_redirects=False)).status_code == 303


async def test_after_sign_in_the_page_asked_for_opens(anonymous: Console) -> None:
    first = await anonymous.get("/admin/clients?tag=vip", follow_redirects=False)
    target = first.headers["location"].split("next=")[1]
    page = await anonymous.get("/admin/sign-in")
    anonymous.csrf = csrf_of(page.text)
    response = await anonymous.post(
        "/admin/sign-in", {"token": API_TOKEN, "next": "/admin/clients?tag=vip"}, follow_redirects=False
    )
    assert target == "%2Fadmin%2Fclients%3Ftag%3Dvip"
    assert response.headers["location"] == "/admin/clients?tag=vip"


async def test_sign_in_never_sends_the_browser_off_the_console(anonymous: Console) -> None:
    for target in ["https://elsewhere.example/", "//elsewhere.example/admin", "/api/v1/clients"]:
        page = await anonymous.get("/admin/sign-in")
        anonymous.csrf = csrf_of(page.text)
        data = {"token": API_TOKEN, "next": target}
        response = await anonymous.post("/admin/sign-in", data, follow_redirects=False)
        assert response.headers["location"] == "/admin", target


SHORT_TTL_S = 2.0


async def _expires_at(db: AsyncSession, session_id: str) -> dt.datetime | None:
    found = await db.scalar(text("SELECT expires_at FROM console_sessions WHERE session_id = :id"), {"id": session_id})
    await db.commit()
    return found


async def test_a_session_ends_after_the_ttl_without_a_request(settings: Settings, db: AsyncSession) -> None:
    app = create_app(replace(settings, session_ttl_s=SHORT_TTL_S))
    async with AsyncTestClient(app=app) as client:
        console = Console(client)
        assert (await console.sign_in()).status_code == 200
        session_id = client.cookies.get(SESSION_COOKIE)
        assert session_id
        # The cookie is sent by hand: the server, not the client's cookie jar, must be what ends it.
        cookie = {"Cookie": f"{SESSION_COOKIE}={session_id}"}
        client.cookies.clear()
        first = await _expires_at(db, session_id)
        assert first is not None

        # A request within the TTL keeps the session and pushes its end on.
        assert (await client.get("/admin", headers=cookie, follow_redirects=False)).status_code == 200
        renewed = await _expires_at(db, session_id)
        assert renewed is not None
        assert renewed >= first
        last_request_at = await database_now(db)

        # Then none for longer than the TTL (counted here, not read from the session): the next finds it over.
        ttl = dt.timedelta(seconds=SHORT_TTL_S)
        await wait_for(lambda: database_now(db), lambda now: now > last_request_at + ttl, timeout_s=SHORT_TTL_S + 10)
        answer = await client.get("/admin", headers=cookie, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/sign-in")
