"""Waiting on a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout_s: float = 30.0, interval_s: float = 0.1
) -> T:
    """Polls ``probe`` until ``accept`` holds for its value; fails with the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout_s} s; last value: {value!r}"
            raise AssertionError(msg)
        await asyncio.sleep(interval_s)
