"""The API's handle on the job queue: a procrastinate app of its own, opened with the Litestar app,
that enqueues tasks by name (the tasks themselves live in the worker's app)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from procrastinate import App, PsycopgConnector
from psycopg import AsyncConnection

from notification.config import Settings


def create_connector(settings: Settings, max_size: int, min_size: int = 1) -> PsycopgConnector:
    # Until opened, a connector is only its arguments: the CLI may import this without a database.
    conninfo = settings.psycopg_conninfo if settings.database_url else ""
    return PsycopgConnector(conninfo=conninfo, min_size=min_size, max_size=max_size, configure=_autocommit)


async def _autocommit(connection: AsyncConnection) -> None:
    # A statement outside `conn.transaction()` must not open a transaction that silently turns
    # the blocks after it into savepoints, committed only when the connection goes back.
    await connection.set_autocommit(True)


def job_queue_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # min_size=0: the API starts, and answers /ready with 503, while the database is away.
        job_queue = App(connector=create_connector(settings, max_size=4, min_size=0))
        async with job_queue.open_async():
            app.state.job_queue = job_queue
            yield

    return lifespan


def provide_job_queue(state: State) -> App:
    job_queue: App = state.job_queue
    return job_queue
