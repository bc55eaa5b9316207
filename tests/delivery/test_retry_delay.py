"""The retry schedule after a transient failure: exponential from NOTIFICATION_RETRY_BASE_S, capped at
NOTIFICATION_RETRY_MAX_S, jittered, and never shorter than the provider's Retry-After."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notification.config import Settings, load_settings
from notification.delivery.policy import retry_delay_s

SAMPLES = 300
DEFAULTS = load_settings({})
FAST = replace(DEFAULTS, retry_base_s=0.2, retry_max_s=1.0)


def _delays(settings: Settings, attempts: int, retry_after_s: float | None = None) -> list[float]:
    return [retry_delay_s(settings, attempts, retry_after_s) for _ in range(SAMPLES)]


def _assert_jittered_within(delays: list[float], low: float, high: float) -> None:
    assert all(low <= delay <= high for delay in delays), (low, high, min(delays), max(delays))
    # Spread over the range rather than one value: uniform draws, so missing either end fifth of it in 300
    # draws has a probability of 0.8**300, about 1e-29.
    assert min(delays) < low + (high - low) / 5
    assert max(delays) > high - (high - low) / 5


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (9, 256), (10, 300), (11, 300), (40, 300), (1000, 300)],
)
def test_the_delay_doubles_each_attempt_up_to_the_cap(attempts: int, ceiling: float) -> None:
    _assert_jittered_within(_delays(DEFAULTS, attempts), ceiling / 2, ceiling)


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (20, 1.0)])
def test_the_schedule_follows_the_settings(attempts: int, ceiling: float) -> None:
    _assert_jittered_within(_delays(FAST, attempts), ceiling / 2, ceiling)


def test_a_message_not_attempted_yet_waits_like_a_first_attempt() -> None:
    _assert_jittered_within(_delays(DEFAULTS, 0), 0.5, 1)


def test_a_longer_retry_after_wins_even_over_the_cap() -> None:
    assert _delays(DEFAULTS, 1, retry_after_s=30) == [30.0] * SAMPLES
    assert _delays(DEFAULTS, 20, retry_after_s=3600) == [3600.0] * SAMPLES


def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    _assert_jittered_within(_delays(DEFAULTS, 6, retry_after_s=1), 16, 32)
    _assert_jittered_within(_delays(DEFAULTS, 3, retry_after_s=0), 2, 4)


def test_the_cap_holds_however_many_attempts() -> None:
    # 1,025 attempts take under three days of a provider failing at the default cap, minutes at a low one.
    _assert_jittered_within(_delays(DEFAULTS, 1026), 150, 300)
