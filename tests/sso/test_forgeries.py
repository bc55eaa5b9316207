"""ID tokens an attacker or a careless provider could hand the console, each judged as the README says:
public-key signatures only, the key set read again for a key not seen yet, a minute of clock skew, and
an email the provider has verified (in the token, or at its user info endpoint)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.console_client import Console
from tests.sso.conftest import ADMIN, audit_rows, authorize, begin, sign_in_through, stored_sessions
from tests.sso.oidc import FakeOpenIDProvider, Script
from tests.sso.test_sign_in_flow import assert_nobody_signed_in


async def _signed_in_as_admin(console: Console, db: AsyncSession) -> None:
    sessions = [s for s in await stored_sessions(db) if "identity" in s]
    assert [s["identity"] for s in sessions] == [{"actor": ADMIN, "role": "admin", "method": "oidc"}]


@pytest.mark.parametrize("algorithm", ["none", "HS256-public"])
async def test_a_token_not_signed_with_a_public_key_signs_nobody_in(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, algorithm: str
) -> None:
    callback = await authorize(await begin(anonymous))
    oidc.script = Script(algorithm=algorithm)

    answer = await anonymous.get(callback, follow_redirects=False)

    assert answer.status_code == 502, answer.text
    assert "could not be trusted" in answer.text
    await assert_nobody_signed_in(anonymous, db)
    assert await audit_rows(db) == []


async def test_a_key_rotated_in_after_the_key_set_was_read_is_fetched_and_accepted(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    # A first sign-in has the app read and keep the key set, with the old key alone in it.
    assert (await sign_in_through(anonymous)).status_code == 303
    read_before = oidc.jwks_requests
    assert read_before == 1
    await anonymous.post("/admin/sign-out", {})
    oidc.rotate()

    answer = await sign_in_through(anonymous)

    assert answer.status_code == 303, answer.text
    assert oidc.jwks_requests == read_before + 1, "the key set is read again for the key it had not seen"
    await _signed_in_as_admin(anonymous, db)


@pytest.mark.parametrize(("expired_s", "accepted"), [(30, True), (90, False)])
async def test_a_token_expired_within_the_minute_of_clock_skew_is_accepted_and_not_beyond(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, expired_s: int, accepted: bool
) -> None:
    oidc.script = Script(expires_in=-expired_s)

    answer = await sign_in_through(anonymous)

    if accepted:
        assert answer.status_code == 303, answer.text
        await _signed_in_as_admin(anonymous, db)
    else:
        assert answer.status_code == 502, answer.text
        assert "could not be trusted" in answer.text
        await assert_nobody_signed_in(anonymous, db)


@pytest.mark.parametrize(("verified", "status"), [(True, 303), (False, 403), ("false", 403)])
async def test_an_email_from_the_user_info_endpoint_counts_only_verified(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession, verified: object, status: int
) -> None:
    oidc.script = Script(email_in_token=False, userinfo_email_verified=verified)

    answer = await sign_in_through(anonymous)

    assert answer.status_code == status, answer.text
    if status == 303:
        await _signed_in_as_admin(anonymous, db)
    else:
        assert f"has not verified {ADMIN}" in answer.text
        await assert_nobody_signed_in(anonymous, db)
