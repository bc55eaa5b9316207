"""The console's single sign-on against a real OpenID provider over HTTP (the tests' own, whose
answers each test scripts): who gets in with which role, and every way a callback can fail,
none of which signs anyone in."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import API_TOKEN
from tests.console_client import SESSION_COOKIE, Console
from tests.sso.conftest import ADMIN, audit_rows, authorize, begin, sign_in_through, stored_sessions
from tests.sso.oidc import IMPOSTOR_KEY, UNPUBLISHED_KEY, FakeOpenIDProvider, Script


def csrf_of_page(html: str) -> str:
    """The CSRF token every console page gives htmx (the sign-in page has no form that posts)."""
    found = re.search(r'"x-csrftoken": "([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def assert_nobody_signed_in(console: Console, db: AsyncSession) -> None:
    assert [s for s in await stored_sessions(db) if "identity" in s] == []
    answer = await console.get("/admin", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/sign-in")


async def test_an_admin_signs_in_through_the_provider_with_pkce_state_and_nonce(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    anonymous.client.cookies.set(SESSION_COOKIE, "planted-by-someone-else", domain="testserver.local", path="/admin")
    authorization_url = await begin(anonymous)
    query = parse_qs(authorization_url.query.decode())
    assert str(authorization_url).startswith(f"{oidc.url}/authorize?")
    assert query["redirect_uri"] == ["http://testserver.local/admin/sign-in/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    # The sign-in under way waits in a signed cookie of this browser: no row for an anonymous visitor.
    assert await stored_sessions(db) == []
    assert anonymous.client.cookies.get("notification_sso")

    answer = await anonymous.get(await authorize(authorization_url), follow_redirects=False)

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/admin/clients"
    [session] = await stored_sessions(db)
    assert session["identity"] == {"actor": ADMIN, "role": "admin", "method": "oidc"}
    assert session["timezone"] == "Europe/Moscow"
    assert "sign_in_pending" not in session
    assert anonymous.client.cookies.get(SESSION_COOKIE) not in {None, "planted-by-someone-else"}
    page = await anonymous.get("/admin/clients")
    assert f"{ADMIN} (admin)" in page.text
    assert "Add a client" in page.text
    assert await audit_rows(db) == [
        {
            "actor": ADMIN,
            "via": "console",
            "action": "sign-in",
            "entity": "session",
            "entity_id": None,
            "changes": {"role": {"old": None, "new": "admin"}, "method": {"old": None, "new": "oidc"}},
        }
    ]


async def test_a_viewer_sees_the_pages_but_not_the_forms(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    oidc.script = Script(email="Reader@Viewers.Example.com")
    assert (await sign_in_through(anonymous)).status_code == 303

    [session] = await stored_sessions(db)
    assert session["identity"] == {"actor": "reader@viewers.example.com", "role": "viewer", "method": "oidc"}
    clients = await anonymous.get("/admin/clients")
    assert "reader@viewers.example.com (viewer)" in clients.text
    assert "Add a client" not in clients.text
    assert "Import a CSV file" not in clients.text
    assert "New mailing" not in (await anonymous.get("/admin/mailings")).text
    refused = await anonymous.get("/admin/clients/new")
    assert refused.status_code == 403
    assert "may look but not change" in refused.text
    # The providers page too: seen, no form, and a change refused.
    providers = await anonymous.get("/admin/providers")
    assert providers.status_code == 200
    assert 'id="provider-form"' not in providers.text
    assert 'id="routes-form"' not in providers.text
    changed = await anonymous.post("/admin/providers/routes", {"routes": "[]"})
    assert changed.status_code == 403


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (Script(email="stranger@elsewhere.example"), "stranger@elsewhere.example has no access to this console"),
        (Script(email_verified=False), f"has not verified {ADMIN}"),
        (Script(email_verified="false"), f"has not verified {ADMIN}"),
    ],
)
async def test_who_is_not_let_in_is_told_so_and_recorded(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, script: Script, reason: str
) -> None:
    oidc.script = script

    answer = await sign_in_through(anonymous)

    assert answer.status_code == 403
    assert "No access" in answer.text
    assert reason in answer.text
    await assert_nobody_signed_in(anonymous, db)
    assert await stored_sessions(db) == []
    [refusal] = await audit_rows(db)
    assert refusal["action"] == "sign-in refused"
    assert refusal["actor"] == script.email
    assert reason in refusal["changes"]["reason"]["new"]


FAILURES = {
    "another audience": (Script(audience="some-other-client"), 502, "could not be trusted"),
    "expired token": (Script(expires_in=-600), 502, "could not be trusted"),
    "forged signature, unknown key": (Script(signing_key=UNPUBLISHED_KEY), 502, "could not be trusted"),
    "forged signature, published key id": (Script(signing_key=IMPOSTOR_KEY), 502, "could not be trusted"),
    "another nonce": (Script(nonce="a-nonce-from-another-sign-in"), 502, "could not be trusted"),
    "another issuer": (Script(issuer="https://impostor.example"), 502, "could not be trusted"),
    "expired code": (Script(token_answer="invalid_grant"), 400, "no longer accepts this sign-in"),
    "token endpoint fails": (Script(token_answer="error_500"), 503, "cannot be reached"),
    "token endpoint answers HTML": (Script(token_answer="html"), 502, "not OpenID Connect"),
    "no ID token": (Script(token_answer="no_id_token"), 502, "not OpenID Connect"),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_a_callback_the_provider_answers_wrongly_signs_nobody_in(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, case: str
) -> None:
    script, status, message = FAILURES[case]
    callback = await authorize(await begin(anonymous))
    oidc.script = script

    answer = await anonymous.get(callback, follow_redirects=False)

    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert 'href="/admin/sign-in"' in answer.text
    await assert_nobody_signed_in(anonymous, db)
    # Nothing is kept for a visitor who did not get in, and no person was vouched for.
    assert await stored_sessions(db) == []
    assert await audit_rows(db) == []


async def test_denied_consent_signs_nobody_in(anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession) -> None:
    state = parse_qs((await begin(anonymous)).query.decode())["state"][0]

    answer = await anonymous.get(
        "/admin/sign-in/callback", params={"error": "access_denied", "state": state}, follow_redirects=False
    )

    assert answer.status_code == 403
    assert "did not let you sign in" in answer.text
    await assert_nobody_signed_in(anonymous, db)
    # The sign-in it ended is over: its code, had there been one, would find nothing to finish.
    assert await stored_sessions(db) == []


async def test_a_callback_with_another_state_signs_nobody_in(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    callback = httpx.URL(await authorize(await begin(anonymous)))
    forged = callback.copy_set_param("state", "a-state-this-browser-never-started")

    answer = await anonymous.get(str(forged), follow_redirects=False)

    assert answer.status_code == 400
    assert "does not belong to this browser" in answer.text
    assert oidc.token_requests == 0
    await assert_nobody_signed_in(anonymous, db)


async def test_a_callback_in_another_browser_signs_nobody_in(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    # A code and state sent to someone else's browser (login CSRF): that browser never started it.
    callback = await authorize(await begin(anonymous))
    anonymous.client.cookies.clear()

    answer = await anonymous.get(callback, follow_redirects=False)

    assert answer.status_code == 400
    assert oidc.token_requests == 0
    await assert_nobody_signed_in(anonymous, db)


async def test_a_replayed_state_signs_nobody_in(anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession) -> None:
    callback = await authorize(await begin(anonymous))
    assert (await anonymous.get(callback, follow_redirects=False)).status_code == 303
    anonymous.csrf = csrf_of_page((await anonymous.get("/admin")).text)
    assert (await anonymous.post("/admin/sign-out", follow_redirects=False)).status_code == 303

    replayed = await anonymous.get(callback, follow_redirects=False)

    assert replayed.status_code == 400
    assert "already used" in replayed.text
    assert oidc.token_requests == 1
    await assert_nobody_signed_in(anonymous, db)


async def test_a_sign_in_left_waiting_too_long_is_refused(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback = await authorize(await begin(anonymous))
    later = time.time() + 11 * 60
    monkeypatch.setattr(time, "time", lambda: later)

    answer = await anonymous.get(callback, follow_redirects=False)

    assert answer.status_code == 400
    assert "took too long" in answer.text
    await assert_nobody_signed_in(anonymous, db)


async def test_a_provider_that_is_down_signs_nobody_in(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    callback = await authorize(await begin(anonymous))
    oidc.stop()

    answer = await anonymous.get(callback, follow_redirects=False)

    assert answer.status_code == 503
    assert "cannot be reached" in answer.text
    await assert_nobody_signed_in(anonymous, db)


async def test_starting_while_the_provider_is_down_says_so(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    oidc.stop()

    answer = await anonymous.get("/admin/sign-in/sso", follow_redirects=False)

    assert answer.status_code == 503
    assert "cannot be reached" in answer.text
    assert await stored_sessions(db) == []


async def test_discovery_that_is_not_openid_connect_says_so(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    oidc.script = Script(discovery="html")

    answer = await anonymous.get("/admin/sign-in/sso", follow_redirects=False)

    assert answer.status_code == 502
    assert "not OpenID Connect" in answer.text
    assert await stored_sessions(db) == []


async def test_a_failed_discovery_is_remembered_for_a_while(anonymous: Console, oidc: FakeOpenIDProvider) -> None:
    oidc.script = Script(discovery="html")
    for _ in range(5):
        answer = await anonymous.get("/admin/sign-in/sso", follow_redirects=False)
        assert answer.status_code == 502
    # Anonymous starts do not each wait on a provider that just failed.
    assert oidc.discovery_requests == 1


async def test_sign_out_ends_the_session_at_the_provider_too(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    assert (await sign_in_through(anonymous)).status_code == 303
    anonymous.csrf = csrf_of_page((await anonymous.get("/admin")).text)

    answer = await anonymous.post("/admin/sign-out", follow_redirects=False)

    assert answer.status_code == 303
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc.url}/end-session"
    params = parse_qs(target.query)
    assert params["post_logout_redirect_uri"] == ["http://testserver.local/admin/sign-in"]
    assert params["client_id"] == ["notification-console"]
    assert params["id_token_hint"][0].count(".") == 2
    assert await stored_sessions(db) == []
    assert [row["action"] for row in await audit_rows(db)] == ["sign-in", "sign-out"]
    # The sign-in page's forms may lead to the provider: browsers hold a form's redirects to form-action.
    policy = (await anonymous.get("/admin/sign-in")).headers["content-security-policy"]
    assert f"form-action 'self' {oidc.url};" in policy


async def test_token_sign_in_is_off_once_an_issuer_is_set(anonymous: Console, db: AsyncSession) -> None:
    page = await anonymous.get("/admin/sign-in")
    assert "Sign in with single sign-on" in page.text
    assert 'id="token"' not in page.text

    anonymous.csrf = csrf_of_page(page.text)
    refused = await anonymous.post("/admin/sign-in", {"token": API_TOKEN})

    assert refused.status_code == 403
    assert "turned off" in refused.text
    await assert_nobody_signed_in(anonymous, db)
    [refusal] = await audit_rows(db)
    assert refusal["action"] == "sign-in refused"
    assert refusal["actor"].startswith("api-token:")
