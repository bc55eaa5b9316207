"""Every console route that changes something, read from the app's own route table so that a new one is
walked too: refused without a valid CSRF token, refused for a viewer, and nothing in the database changed."""

from __future__ import annotations

import datetime as dt
import re

from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import API_TOKEN
from tests.console_client import Console, become_viewer

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# What any signed-in person may do to their own session.
EVERYONE_MAY = {"/admin/sign-in", "/admin/sign-out"}
TABLES = (
    "mailings",
    "clients",
    "messages",
    "audit_log",
    "idempotency_keys",
    "procrastinate_jobs",
    "audiences",
    "schedules",
    "operator_code_names",
    "providers",
    "provider_routes",
    "webhook_endpoints",
    "webhook_outbox",
    "suppressions",
)
# A form that would be accepted if the route let it through: each field any console form asks for.
FORM = {
    "phone": "79160000009",
    "text": "Changed",
    "timezone": "Europe/Moscow",
    "tag": "changed",
    "operator_code": "916",
    "statuses": "failed",
    "token": API_TOKEN,
}


def changing_routes(app: Litestar) -> list[tuple[str, str]]:
    found = [
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/admin")
        for method in route.methods
        if method not in SAFE_METHODS
    ]
    return sorted(found)


async def snapshot(db: AsyncSession) -> dict[str, str | None]:
    """Each table's whole content, digested: an update shows as well as an insert or a delete."""
    digests: dict[str, str | None] = {}
    for table in TABLES:
        digest = await db.scalar(text(f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"))
        digests[table] = digest
    await db.rollback()
    return digests


def url_of(path: str, mailing_id: int, client_id: int) -> str:
    path = re.sub(r"\{mailing_id:int\}", str(mailing_id), path)
    path = re.sub(r"\{client_id:int\}", str(client_id), path)
    # Any other entity: the route must refuse before it would look for one.
    return re.sub(r"\{\w+:\w+\}", "1", path)


async def _setup(console: Console, db: AsyncSession) -> tuple[int, int]:
    api = {"Authorization": f"Bearer {API_TOKEN}"}
    created = await console.client.post(
        "/api/v1/clients/bulk", json=[{"phone": "79500000001", "timezone": "Europe/Moscow"}], headers=api
    )
    assert created.status_code == 201, created.text
    now = dt.datetime.now(dt.UTC)
    body = {
        "text": "Winter sale",
        "kind": "service",
        "start_at": now.isoformat(),
        "end_at": (now + dt.timedelta(hours=1)).isoformat(),
    }
    mailing = await console.client.post("/api/v1/mailings", json=body, headers=api)
    assert mailing.status_code == 201, mailing.text
    await db.execute(
        text("INSERT INTO messages (mailing_id, client_id, status, attempts) SELECT :id, id, 'failed', 1 FROM clients"),
        {"id": mailing.json()["id"]},
    )
    await db.commit()
    return int(mailing.json()["id"]), int(created.json()[0]["id"])


async def test_every_changing_console_route_needs_the_csrf_token(
    app: Litestar, console: Console, db: AsyncSession
) -> None:
    routes = changing_routes(app)
    assert len(routes) >= 15, routes  # the walk reads the real table, not an empty one
    mailing_id, client_id = await _setup(console, db)
    before = await snapshot(db)
    for method, path in routes:
        url = url_of(path, mailing_id, client_id)
        for token in (None, "forged", ""):
            form = FORM if token is None else {**FORM, "_csrf_token": token}
            answer = await console.client.request(method, url, data=form, follow_redirects=False)
            assert answer.status_code == 403, (method, path, token, answer.status_code)
    assert await snapshot(db) == before


async def test_every_changing_console_route_is_refused_to_a_viewer(
    app: Litestar, console: Console, db: AsyncSession
) -> None:
    mailing_id, client_id = await _setup(console, db)
    await become_viewer(console, db)
    before = await snapshot(db)
    routes = [(method, path) for method, path in changing_routes(app) if path not in EVERYONE_MAY]
    for method, path in routes:
        url = url_of(path, mailing_id, client_id)
        form = {"_csrf_token": console.csrf, **FORM}
        answer = await console.client.request(method, url, data=form, follow_redirects=False)
        assert answer.status_code == 403, (method, path, answer.status_code)
    assert await snapshot(db) == before
