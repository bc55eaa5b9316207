"""Webhooks under test: the app with a secret key (an endpoint's secret is sealed with it)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from notification.config import Settings

KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, secret_key=(KEY,))
