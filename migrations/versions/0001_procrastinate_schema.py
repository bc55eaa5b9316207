"""procrastinate's job tables, functions and triggers, as shipped with procrastinate 3.10.

procrastinate keeps its schema as SQL files rather than alembic revisions; this revision applies the
copy kept beside it. A later procrastinate upgrade adds a revision that applies that release's
migration files from ``procrastinate/sql/migrations``.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from sqlalchemy.util.concurrency import await_

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "sql" / "procrastinate_schema_3.10.0.sql"


def upgrade() -> None:
    # The file holds many statements and $$-quoted bodies: asyncpg runs such a script only through
    # its simple-query path, inside the migration's transaction all the same.
    asyncpg_connection = op.get_bind().connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_(asyncpg_connection.execute(SCHEMA_SQL.read_text()))


def downgrade() -> None:
    # One statement per call: asyncpg prepares each, and a prepared statement holds one command.
    op.execute(
        """
        DO $$
        DECLARE fn regprocedure;
        BEGIN
            FOR fn IN SELECT oid::regprocedure FROM pg_proc
                      WHERE proname LIKE 'procrastinate%' AND pronamespace = current_schema()::regnamespace
            LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || fn || ' CASCADE';
            END LOOP;
        END
        $$
        """
    )
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
        " procrastinate_workers CASCADE"
    )
    op.execute(
        "DROP TYPE IF EXISTS procrastinate_job_event_type, procrastinate_job_status, procrastinate_job_to_defer_v1"
        " CASCADE"
    )
