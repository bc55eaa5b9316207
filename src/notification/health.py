"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from litestar import Controller, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from notification.db import MIGRATIONS_DIR


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    database: str
    migrations: str


def _head_revisions() -> set[str]:
    return set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def _current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


class HealthController(Controller):
    include_in_schema = True
    tags = ["operations"]

    @get("/health", summary="Liveness: the process answers")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Readiness: the database answers and its schema is current")
    async def ready(self, db_engine: AsyncEngine) -> Response[Readiness]:
        try:
            async with db_engine.connect() as connection:
                current = await connection.run_sync(_current_revisions)
        except Exception:  # noqa: BLE001  (any failure to reach the database means "not ready")
            return Response(
                Readiness("unavailable", "unreachable", "unknown"), status_code=HTTP_503_SERVICE_UNAVAILABLE
            )
        if current != _head_revisions():
            return Response(Readiness("unavailable", "ok", "pending"), status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response(Readiness("ok", "ok", "current"), status_code=HTTP_200_OK)
