"""The job plumbing every domain shares: the names, queues and locks of every job, the one way
planning is deferred, the connector, and what a task takes from its context (settings, pool).

The API holds a procrastinate app of its own, opened with the Litestar app, that enqueues the
engine's tasks by name: the tasks themselves live in each domain's ``tasks`` module
(``notification.delivery.tasks`` among them), which the API never imports."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from litestar import Litestar
from litestar.datastructures import State
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings

# The worker registers each domain's blueprint under its namespace: a task's full name is
# "<namespace>:<name>", e.g. "delivery:plan_mailing".
DELIVERY_NAMESPACE = "delivery"
REPORTS_NAMESPACE = "reports"
STATS_NAMESPACE = "stats"
IDEMPOTENCY_NAMESPACE = "idempotency"
SCHEDULES_NAMESPACE = "schedules"
WEBHOOKS_NAMESPACE = "webhooks"
INBOUND_NAMESPACE = "inbound"
RECEIPTS_NAMESPACE = "receipts"
PLAN_TASK = f"{DELIVERY_NAMESPACE}:plan_mailing"
SEND_TASK = f"{DELIVERY_NAMESPACE}:send_messages"
PLAN_QUEUE = "planning"
SEND_QUEUE = "sending"
MAINTENANCE_QUEUE = "maintenance"
REPORT_QUEUE = "reports"
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_DISPATCH_LOCK = "webhooks-dispatch"
PLAN_LOCK_PREFIX = "mailing-"
STOP_REPLY_TASK = f"{INBOUND_NAMESPACE}:send_stop_reply"
STOP_REPLY_PRIORITY = 10

_Value = TypeVar("_Value")


def plan_lock(mailing_id: int) -> str:
    """One planning of a mailing runs at a time."""
    return f"{PLAN_LOCK_PREFIX}{mailing_id}"


def plan_queueing_lock(mailing_id: int, plan_version: int) -> str:
    """One planning of each version waits in the queue at a time."""
    return f"plan-mailing-{mailing_id}-v{plan_version}"


async def schedule_planning(
    job_queue: App, mailing_id: int, plan_version: int, start_at: dt.datetime | None = None
) -> bool:
    """Enqueue the planning of this version at start_at (now without it); a twin already waiting is
    enough, and then nothing is enqueued (False). The API's app and the worker's both defer it
    here: by name, so the API needs none of the engine's code."""
    try:
        await job_queue.configure_task(
            PLAN_TASK,
            schedule_at=start_at,
            lock=plan_lock(mailing_id),
            queueing_lock=plan_queueing_lock(mailing_id, plan_version),
        ).defer_async(mailing_id=mailing_id, plan_version=plan_version)
    except AlreadyEnqueued:
        return False
    return True


_BY_NAME = App(connector=PsycopgConnector(conninfo=""))
"""Defers by name on the caller's own connection: it needs no pool of its own, and opens none."""


async def defer_stop_reply(conn: AsyncConnection, provider: str, phone: str, inbound_id: int) -> None:
    """The reply to a stop word, deferred in the caller's transaction (the one storing the word):
    by name, so that the API and the SMPP hook need none of the worker's code."""
    # Ahead of the send batches queued meanwhile: the subscriber waits for the confirmation.
    await _BY_NAME.configure_task(
        STOP_REPLY_TASK, connection=conn, queue=MAINTENANCE_QUEUE, priority=STOP_REPLY_PRIORITY
    ).defer_async(provider=provider, phone=phone, inbound_id=inbound_id)


def context_value(context: JobContext, key: str, kind: type[_Value]) -> _Value:
    """What the worker put in its tasks' ``additional_context`` under ``key``."""
    value = context.additional_context.get(key)
    if not isinstance(value, kind):
        msg = f"the worker was started without its {key} ({kind.__name__}) in additional_context"
        raise TypeError(msg)
    return value


def settings_of(context: JobContext) -> Settings:
    return context_value(context, "settings", Settings)


def pool_of(context: JobContext) -> AsyncConnectionPool:
    return queue_pool(context.app)


def queue_pool(job_queue: App) -> AsyncConnectionPool:
    """The job queue's own connection pool, which the API's psycopg work borrows too."""
    connector = job_queue.connector
    if not isinstance(connector, PsycopgConnector):
        msg = "the job queue must use procrastinate's PsycopgConnector"
        raise TypeError(msg)
    return connector.pool


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
