"""CSRF tokens belong to one signed-in session: a CSRF cookie planted in the victim's browser, with
the token that goes with it, changes nothing; nor does a form posted from another origin."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.console_client import CSRF_COOKIE, Console, csrf_of

CLIENT = {"phone": "79160000001", "timezone": "UTC"}


async def _clients(db: AsyncSession) -> int:
    count = (await db.execute(text("SELECT count(*) FROM clients"))).scalar_one()
    await db.commit()
    return int(count)


async def test_a_planted_csrf_cookie_and_its_token_are_refused(
    console: Console, app: Litestar, db: AsyncSession
) -> None:
    # The attacker's own valid pair, from the sign-in page any stranger may load.
    async with AsyncTestClient(app=app) as attacker:
        planted_token = csrf_of((await attacker.get("/admin/sign-in")).text)
        planted_cookie = attacker.cookies.get(CSRF_COOKIE)
    assert planted_cookie
    console.client.cookies.set(CSRF_COOKIE, planted_cookie, domain="testserver.local", path="/admin")
    refused = await console.post("/admin/clients", {**CLIENT, "_csrf_token": planted_token})
    assert refused.status_code == 403
    assert await _clients(db) == 0

    # The next page the victim opens replaces the planted cookie with one of the session's own.
    page = await console.get("/admin/clients/new")
    own = csrf_of(page.text)
    assert own != planted_token
    assert console.client.cookies.get(CSRF_COOKIE) != planted_cookie
    accepted = await console.post("/admin/clients", {**CLIENT, "_csrf_token": own}, follow_redirects=False)
    assert accepted.status_code == 303, accepted.text
    assert await _clients(db) == 1


async def test_a_form_from_another_origin_is_refused(console: Console, db: AsyncSession) -> None:
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = await console.post("/admin/clients", CLIENT, headers=headers)
        assert refused.status_code == 403, headers
    assert await _clients(db) == 0
    same = await console.post("/admin/clients", CLIENT, headers={"Origin": "http://testserver.local"})
    assert same.status_code == 200
    assert await _clients(db) == 1
