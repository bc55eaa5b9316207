"""Telling "the database cannot be reached" from a fault of ours: the first is a 503 with
Retry-After (the client should come back), logged as one line; only the second is a 500."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import sqlalchemy.exc

# How long a client is asked to wait: a database restart or failover takes seconds.
RETRY_AFTER_S = 5
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, timed out
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TooManyConnectionsError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether this error, or one it was raised from, is the database being away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        # The database is there but closed to connections (ALLOW_CONNECTIONS false, during maintenance).
        if isinstance(current, asyncpg.exceptions.ObjectNotInPrerequisiteStateError) and "accepting connections" in str(
            current
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


__all__ = ("RETRY_AFTER_S", "database_unreachable")
