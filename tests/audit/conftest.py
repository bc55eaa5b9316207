"""The audit log under test: the app with both ways into the console (single sign-on against the
tests' own OpenID provider, and API tokens), so that changes are made by people and by tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from notification.config import Settings, load_settings
from tests.conftest import API_TOKEN
from tests.console.conftest import anonymous  # noqa: F401  (the console's fixture, shared)
from tests.sso.conftest import ADMIN, VIEWER_DOMAIN
from tests.sso.oidc import CLIENT_ID, CLIENT_SECRET, FakeOpenIDProvider, running_provider


@pytest.fixture
def oidc() -> Iterator[FakeOpenIDProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def settings(database_url: str, oidc: FakeOpenIDProvider, tmp_path: Path) -> Settings:
    return replace(
        load_settings({}),
        database_url=database_url,
        log_json=True,
        log_level="WARNING",
        api_tokens=(API_TOKEN,),
        data_dir=tmp_path,
        oidc_issuer=oidc.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        admin_emails=(ADMIN,),
        viewer_emails=(VIEWER_DOMAIN,),
        console_token_signin=True,
    )
