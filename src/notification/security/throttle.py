"""Failed sign-ins slowed per client address: wrong API tokens and refused console sign-ins are
counted in PostgreSQL, so every API process sees the same count, per address and window.

Past ``NOTIFICATION_SIGN_IN_FAILURES_ALLOWED`` failures in a window of
``NOTIFICATION_SIGN_IN_FAILURE_WINDOW_S`` the address gets 429 with Retry-After until the window
ends, and its further failures are neither audited nor counted: what one address can write is
bounded by the allowance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar.connection import ASGIConnection

from notification.config import Settings
from notification.lib.sql import load

STATE_KEY = "sign_in_throttle"
statements = load(__package__, "throttle.sql")


@dataclass(frozen=True, slots=True)
class Verdict:
    failures: int
    """Failures of the address in its current window, this one included when it was counted."""
    retry_after_s: int
    """When slowed: whole seconds until the window ends; 0 when not slowed."""

    @property
    def slowed(self) -> bool:
        return self.retry_after_s > 0


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address as the server saw it (behind a trusted proxy: the forwarded one)."""
    client = connection.client
    return client.host if client is not None and client.host else "unknown"


class SignInThrottle:
    def __init__(self, database: SQLAlchemyAsyncConfig, settings: Settings) -> None:
        self.database = database
        self.allowed = settings.sign_in_failures_allowed
        self.window_s = settings.sign_in_failure_window_s

    def _verdict(self, failures: int, seconds_left: float, *, allowed: int) -> Verdict:
        slowed = failures > allowed
        return Verdict(failures, max(1, math.ceil(seconds_left)) if slowed else 0)

    async def check(self, address: str) -> Verdict:
        """Whether this address must wait before it may try again, counting nothing: it must once
        it has used up its allowance."""
        async with self.database.get_engine().connect() as conn:
            row = (await conn.execute(statements.text("failures_now"), self._params(address))).first()
        if row is None:
            return Verdict(0, 0)
        return self._verdict(row.failures, row.seconds_left, allowed=self.allowed - 1)

    async def fail(self, address: str) -> Verdict:
        """One more failure of this address; slowed when it went past the allowance."""
        async with self.database.get_engine().begin() as conn:
            row = (await conn.execute(statements.text("record_failure"), self._params(address))).one()
            if row.failures == 1:
                # A new window for this address: a moment to drop the windows that have passed.
                await conn.execute(statements.text("sweep"), {"window_s": self.window_s})
        return self._verdict(row.failures, row.seconds_left, allowed=self.allowed)

    def _params(self, address: str) -> dict[str, Any]:
        return {"address": address, "window_s": self.window_s}


def throttle_of(connection: ASGIConnection[Any, Any, Any, Any]) -> SignInThrottle | None:
    throttle = connection.app.state.get(STATE_KEY)
    return throttle if isinstance(throttle, SignInThrottle) else None


__all__ = ("STATE_KEY", "SignInThrottle", "Verdict", "client_address", "throttle_of")
