"""The job queue as the API sees it: a procrastinate app of its own, opened with the Litestar app,
that enqueues the engine's tasks by name. The names, queues and locks are decided here; the
tasks themselves live in ``notification.delivery.tasks``, which the API never imports."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from psycopg import AsyncConnection

from notification.config import Settings

# The worker registers the delivery blueprint under this namespace: a task's full name is
# "delivery:<name>".
DELIVERY_NAMESPACE = "delivery"
PLAN_TASK = f"{DELIVERY_NAMESPACE}:plan_mailing"
SEND_TASK = f"{DELIVERY_NAMESPACE}:send_messages"
PLAN_QUEUE = "planning"
SEND_QUEUE = "sending"
MAINTENANCE_QUEUE = "maintenance"
PLAN_LOCK_PREFIX = "mailing-"


def plan_lock(mailing_id: int) -> str:
    """One planning of a mailing runs at a time."""
    return f"{PLAN_LOCK_PREFIX}{mailing_id}"


def plan_queueing_lock(mailing_id: int, plan_version: int) -> str:
    """One planning of each version waits in the queue at a time."""
    return f"plan-mailing-{mailing_id}-v{plan_version}"


async def schedule_planning(job_queue: App, mailing_id: int, plan_version: int, start_at: dt.datetime) -> None:
    """Enqueue the planning of this version at start_at; a twin already waiting is enough."""
    with contextlib.suppress(AlreadyEnqueued):
        await job_queue.configure_task(
            PLAN_TASK,
            schedule_at=start_at,
            lock=plan_lock(mailing_id),
            queueing_lock=plan_queueing_lock(mailing_id, plan_version),
        ).defer_async(mailing_id=mailing_id, plan_version=plan_version)


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
