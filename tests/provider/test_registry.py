"""The provider registry: the providers of a process by name, built from the settings."""

from __future__ import annotations

import pytest

from notification.config import Settings, load_settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.provider.base import Outcome, OutgoingMessage, Provider
from notification.provider.http import HttpProvider
from notification.provider.registry import DEFAULT_PROVIDER, ProviderRegistry


async def test_a_deployment_with_only_the_old_provider_variables_sends_through_the_default_provider(
    settings: Settings, fake_provider: RunningFakeProvider
) -> None:
    fake_provider.set_options(token="s3cret")
    environ = {
        "NOTIFICATION_DATABASE_URL": settings.psycopg_conninfo,
        "NOTIFICATION_PROVIDER_URL": fake_provider.base_url,
        "NOTIFICATION_PROVIDER_TOKEN": "s3cret",
        "NOTIFICATION_PROVIDER_RATE_LIMIT": "50",
        "NOTIFICATION_PROVIDER_CONCURRENCY": "7",
    }
    providers = ProviderRegistry.from_settings(load_settings(environ))
    await providers.open()
    try:
        assert providers.names == [DEFAULT_PROVIDER]
        entry = providers.default
        assert entry is providers[DEFAULT_PROVIDER]
        assert isinstance(entry.provider, HttpProvider)
        assert isinstance(entry.provider, Provider)
        assert (entry.provider.name, entry.provider.kind) == (DEFAULT_PROVIDER, "http")
        assert (entry.spec.concurrency, entry.spec.rate_limit) == (7, 50.0)
        assert (entry.budget.provider, entry.budget.rate) == (DEFAULT_PROVIDER, 50.0)
        # The token of the old variable is the one the provider checks.
        result = await entry.provider.send(OutgoingMessage(5, "79161234567", "Hello"), time_left_s=5)
        assert (result.outcome, result.status_code) == (Outcome.SENT, 200)
        record = fake_provider.message(5)
        assert record is not None
        assert record.last_body == {"id": 5, "phone": 79161234567, "text": "Hello"}
    finally:
        await providers.aclose()


def test_a_provider_of_an_unknown_kind_is_refused_when_the_registry_is_built(settings: Settings) -> None:
    with pytest.raises(ValueError, match="kind 'http'"):
        ProviderRegistry.from_settings(settings, kinds={"smpp": lambda spec, _: HttpProvider(spec.name, "", "", 1, 1)})
