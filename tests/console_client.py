"""What the tests that drive the console share: an HTTP client that signs in and sends forms as a
browser would, and the forms' values as an operator in Moscow types them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import API_TOKEN

CSRF_COOKIE = "notification_csrf"
SESSION_COOKIE = "notification_session"
MOSCOW = ZoneInfo("Europe/Moscow")


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the page carries no CSRF field"
    return found.group(1)


class Console:
    """An HTTP client of the console that signs in and sends forms as a browser would."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, token: str = API_TOKEN, timezone: str = "Europe/Moscow") -> Any:
        page = await self.client.get("/admin/sign-in")
        self.csrf = csrf_of(page.text)
        signed_in = await self.client.post(
            "/admin/sign-in", data={"_csrf_token": self.csrf, "token": token, "timezone": timezone}
        )
        # A signed-in session accepts only tokens minted for it: the page signing in led to has one.
        if found := re.search(r'"x-csrftoken": "([^"]+)"', signed_in.text):
            self.csrf = found.group(1)
        return signed_in

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post carrying the CSRF token (unless the data names its own)."""
        form = {"_csrf_token": self.csrf, **(data or {})}
        return await self.client.post(path, data=form, **kwargs)

    async def upload(self, path: str, content: bytes, filename: str = "clients.csv") -> Any:
        return await self.client.post(
            path, data={"_csrf_token": self.csrf}, files={"file": (filename, content, "text/csv")}
        )


def local_input(moment: dt.datetime) -> str:
    """The moment as a console's datetime-local field holds it for an operator in Moscow."""
    return moment.astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M")


def mailing_form(**overrides: Any) -> dict[str, Any]:
    """A valid new-mailing form (an hour from now, for an hour) unless ``overrides`` say otherwise."""
    now = dt.datetime.now(dt.UTC)
    return {
        "text": "Winter sale",
        "start_at": local_input(now + dt.timedelta(hours=1)),
        "end_at": local_input(now + dt.timedelta(hours=2)),
        **overrides,
    }


async def become_viewer(console: Console, db: AsyncSession, actor: str = "ann@example.com") -> None:
    """The console's signed-in session turned into a viewer's: the same session (its sign-in time,
    credential and CSRF key, which the console checks on every request) with a viewer's identity."""
    session_id = console.client.cookies.get(SESSION_COOKIE)
    select = text("SELECT data FROM console_sessions WHERE session_id = :id")
    stored = (await db.execute(select, {"id": session_id})).scalar_one()
    data = {**json.loads(stored), "identity": {"actor": actor, "role": "viewer", "method": "token"}}
    update = text("UPDATE console_sessions SET data = :data WHERE session_id = :id")
    await db.execute(update, {"id": session_id, "data": json.dumps(data).encode()})
    await db.commit()
