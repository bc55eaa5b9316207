"""The audit log under test: the app with both ways into the console (single sign-on against the
tests' own OpenID provider, and API tokens), so that changes are made by people and by tokens."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from notification.config import Settings
from tests.sso.conftest import ADMIN, VIEWER_DOMAIN, oidc, sso_settings  # noqa: F401  (oidc: the shared fixture)
from tests.sso.oidc import FakeOpenIDProvider

SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(database_url: str, oidc: FakeOpenIDProvider, tmp_path: Path) -> Settings:  # noqa: F811
    # Both ways in at once: people through single sign-on, and API tokens; a key for the secrets
    # webhook endpoints are given.
    return replace(sso_settings(database_url, oidc, tmp_path), console_token_signin=True, secret_key=(SECRET_KEY,))
