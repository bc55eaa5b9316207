"""How the service reads the provider's answers, over real HTTP to the fake provider."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from notification.config import load_settings
from notification.provider.client import Outcome, ProviderClient, parse_retry_after
from notification.provider.fake import RunningFakeProvider, serve_fake_provider


@pytest.fixture
async def fake() -> AsyncIterator[RunningFakeProvider]:
    async with serve_fake_provider() as provider:
        yield provider


@pytest.fixture
async def provider(fake: RunningFakeProvider) -> AsyncIterator[ProviderClient]:
    settings = replace(load_settings({}), provider_url=fake.base_url, provider_token="t0k", provider_timeout_s=1.0)
    client = ProviderClient(settings)
    yield client
    await client.aclose()


async def test_accepted_message_is_sent_with_the_contract_body(
    provider: ProviderClient, fake: RunningFakeProvider
) -> None:
    fake.set_options(token="t0k")
    result = await provider.send(42, "79161234567", "Hello", time_left_s=5)
    assert result.outcome is Outcome.SENT
    assert result.status_code == 200
    record = fake.message(42)
    assert record is not None
    assert record.last_body == {"id": 42, "phone": 79161234567, "text": "Hello"}


@pytest.mark.parametrize(
    ("options", "outcome", "error"),
    [
        ({"error_rate": 1.0}, Outcome.TRANSIENT, "HTTP 500"),
        ({"down": True}, Outcome.TRANSIENT, "HTTP 503"),
        ({"rate_limit_rate": 1.0, "retry_after_s": 2.5}, Outcome.TRANSIENT, "HTTP 429"),
        ({"malformed_rate": 1.0}, Outcome.TRANSIENT, "malformed response body"),
        ({"reject_rate": 1.0}, Outcome.PERMANENT, "HTTP 400"),
        ({"token": "another"}, Outcome.PERMANENT, "HTTP 401"),
        ({"hang_rate": 1.0, "hang_s": 5.0}, Outcome.TRANSIENT, "timeout"),
    ],
)
async def test_each_kind_of_failure_is_classified(
    provider: ProviderClient, fake: RunningFakeProvider, options: dict[str, object], outcome: Outcome, error: str
) -> None:
    fake.set_options(**options)
    result = await provider.send(7, "79161234567", "Hello", time_left_s=5)
    assert result.outcome is outcome
    assert result.error is not None
    assert result.error.startswith(error)
    if "retry_after_s" in options:
        assert result.retry_after_s == 2.5


async def test_unreachable_provider_is_transient() -> None:
    settings = replace(load_settings({}), provider_url="http://127.0.0.1:9/v1", provider_timeout_s=1.0)
    client = ProviderClient(settings)
    try:
        result = await client.send(1, "79161234567", "Hello", time_left_s=5)
    finally:
        await client.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert result.error is not None
    assert result.error.startswith("connection error")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
