"""An identity provider's email longer than any address is a refusal page, not a 500."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tests.console_client import Console
from tests.sso.conftest import audit_rows, sign_in_through, stored_sessions
from tests.sso.oidc import FakeOpenIDProvider, Script


async def test_an_email_longer_than_320_characters_is_refused(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    oidc.script = Script(email=f"{'a' * 400}@example.com")
    answer = await sign_in_through(anonymous)
    assert answer.status_code == 403
    assert "longer than any address" in answer.text
    assert [s for s in await stored_sessions(db) if "identity" in s] == []
    [refusal] = await audit_rows(db)
    assert refusal["actor"].startswith("oidc:")
