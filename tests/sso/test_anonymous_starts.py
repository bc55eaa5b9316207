"""Starting a single sign-on costs the service nothing to keep: the sign-in under way lives in a
signed cookie of the browser, never in a row, and a cookie changed by the browser is worth nothing."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.console_client import Console
from tests.sso.conftest import authorize, begin

PENDING_COOKIE = "notification_sso"


async def _rows(db: AsyncSession) -> tuple[int, int]:
    sessions = (await db.execute(text("SELECT count(*) FROM console_sessions"))).scalar_one()
    audit = (await db.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
    await db.commit()
    return int(sessions), int(audit)


async def test_a_thousand_anonymous_starts_write_no_rows(anonymous: Console, db: AsyncSession) -> None:
    for _ in range(1000):
        anonymous.client.cookies.clear()
        started = await anonymous.get("/admin/sign-in/sso", follow_redirects=False)
        assert started.status_code == 303
        assert anonymous.client.cookies.get(PENDING_COOKIE)
    assert await _rows(db) == (0, 0)


async def test_a_changed_pending_cookie_signs_nobody_in(anonymous: Console, db: AsyncSession) -> None:
    callback = await authorize(await begin(anonymous))
    signed = anonymous.client.cookies.get(PENDING_COOKIE)
    assert signed
    payload, _, mac = signed.partition(".")
    forged = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    anonymous.client.cookies.set(PENDING_COOKIE, forged, domain="testserver.local", path="/admin/sign-in")
    answer = await anonymous.get(callback, follow_redirects=False)
    assert answer.status_code == 400
    assert (await _rows(db))[0] == 0
