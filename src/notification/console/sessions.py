"""Console sessions, kept server-side in PostgreSQL: the browser holds only a random id.

advanced-alchemy's session backend stores them; ours adds three things it leaves open: nothing is
stored for a visitor who has not signed in (no row per anonymous request), signing in moves the
session to a new id (a session id planted before sign-in is worth nothing after it), and expired
rows are swept when someone signs in."""

from __future__ import annotations

import secrets
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.extensions.litestar.session import SessionModelMixin, SQLAlchemyAsyncSessionBackend
from litestar.connection import ASGIConnection
from litestar.middleware import DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession
from sqlalchemy import UniqueConstraint

SESSION_COOKIE = "notification_session"
CONSOLE_PATH = "/admin"
# Set in the request's scope state by renew_session_id(); read when the response is sent.
_RENEWED_ID = "console_renewed_session_id"


class ConsoleSession(SessionModelMixin):
    __tablename__ = "console_sessions"
    # The mixin adds a second unique index on session_id for Spanner; PostgreSQL needs the constraint only.
    __table_args__ = (UniqueConstraint("session_id", name="uq_console_sessions_session_id"),)


def renew_session_id(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Store this request's session under a new id, and drop the old one."""
    connection.scope["state"][_RENEWED_ID] = secrets.token_hex(32)


class ConsoleSessionBackend(SQLAlchemyAsyncSessionBackend):
    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        renewed: str | None = connection.scope["state"].get(_RENEWED_ID)
        return renewed or super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        cookie = connection.cookies.get(self.config.key)
        had_session = bool(cookie) and cookie != "null"
        if scope_session is Empty or not scope_session:
            if had_session:
                await super().store_in_message(Empty, message, connection)
            return
        if connection.scope["state"].get(_RENEWED_ID):
            if had_session:
                assert cookie is not None
                await self.delete(cookie, store=self.config.get_store_from_app(connection.scope["app"]))
            await self.delete_expired()
        await super().store_in_message(scope_session, message, connection)


def session_middleware(alchemy: SQLAlchemyAsyncConfig, ttl_s: float) -> DefineMiddleware:
    config = ServerSideSessionConfig(
        key=SESSION_COOKIE,
        max_age=int(ttl_s),
        path=CONSOLE_PATH,
        httponly=True,
        samesite="lax",
        # Secure is added per response when the request came over HTTPS (see headers.py).
        secure=False,
        renew_on_access=True,
    )
    backend = ConsoleSessionBackend(config=config, alchemy_config=alchemy, model=ConsoleSession)
    return DefineMiddleware(SessionMiddleware, backend=backend)


__all__ = ("ConsoleSession", "renew_session_id", "session_middleware")
