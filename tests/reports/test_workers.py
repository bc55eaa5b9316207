"""Real procrastinate workers, in their own processes, sending the day's report."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings
from notification.dev.mail_server import SmtpServer
from notification.reports.rendering import scheduled_message_id
from notification.reports.sending import Outcome, send_due_report
from tests.reports.conftest import RECIPIENT, SENDER, RecordingHandler
from tests.waiting import wait_for
from tests.workers import WorkerProcess

# Nothing is delivered in these tests: the provider is never called.
NO_PROVIDER = "http://127.0.0.1:9/v1"


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(**overrides: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(settings, NO_PROVIDER, log, **overrides)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _rows(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(settings.psycopg_conninfo) as conn:
        return conn.execute(sql).fetchall()


async def test_two_workers_started_after_the_report_time_send_one_report(
    settings: Settings,
    smtp_server: SmtpServer,
    mail: RecordingHandler,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Midnight UTC has passed and no worker was running then: the report is overdue, the same day.
    report = {
        "SMTP_URL": smtp_server.url,
        "REPORT_RECIPIENTS": RECIPIENT,
        "REPORT_FROM": "reports@example.org",
        "REPORT_CRON": "0 0 * * *",
        "REPORT_TIMEZONE": "UTC",
    }
    workers = [start_worker(**report), start_worker(**report)]

    async def deliveries() -> list[tuple[object, ...]]:
        return _rows(settings, "SELECT status, attempts FROM report_deliveries")

    assert await wait_for(deliveries, lambda rows: rows == [("sent", 1)], timeout_s=30) == [("sent", 1)]

    async def both_ready_and_idle() -> tuple[int, int]:
        alive = _rows(settings, "SELECT count(*) FROM procrastinate_workers")[0][0]
        busy = _rows(
            settings,
            "SELECT count(*) FROM procrastinate_jobs"
            " WHERE task_name = 'reports:send_daily_report' AND status IN ('todo', 'doing')",
        )[0][0]
        return int(str(alive)), int(str(busy))

    # Both workers run their periodic deferrer; every report tick they deferred has been worked.
    await wait_for(both_ready_and_idle, lambda state: state == (2, 0), timeout_s=30)
    assert len(mail.messages()) == 1
    [received] = mail.messages()
    assert received.recipients == [RECIPIENT]
    for worker in workers:
        announced = [
            json.loads(line) for line in worker.log_lines() if line.startswith("{") and '"daily report on"' in line
        ]
        assert [(a["cron"], a["timezone"], a["recipients"]) for a in announced] == [("0 0 * * *", "UTC", [RECIPIENT])]
    senders = [w for w in workers if any('"daily report sent"' in line for line in w.log_lines())]
    assert len(senders) == 1


async def test_a_worker_without_recipients_says_so_once_and_sends_nothing(
    settings: Settings, smtp_server: SmtpServer, mail: RecordingHandler, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(SMTP_URL=smtp_server.url, REPORT_CRON="0 0 * * *")

    async def ticks_done() -> int:
        rows = _rows(
            settings,
            "SELECT count(*) FROM procrastinate_periodic_defers d"
            " LEFT JOIN procrastinate_jobs j ON j.id = d.job_id"
            " WHERE d.task_name = 'reports:send_daily_report'"
            " AND coalesce(j.status::text, 'deleted') NOT IN ('todo', 'doing')",
        )
        return int(str(rows[0][0]))

    await wait_for(ticks_done, lambda done: done >= 1, timeout_s=30)
    off = [line for line in worker.log_lines() if '"daily report off"' in line]
    assert len(off) == 1
    assert "NOTIFICATION_REPORT_RECIPIENTS is empty" in off[0]
    assert mail.messages() == []
    assert _rows(settings, "SELECT count(*) FROM report_deliveries") == [(0,)]


# One tick of the schedule in a process of its own, at the moment it starts: a worker's sender.
ONE_TICK = (
    "-c",
    "import asyncio, datetime as dt\n"
    "from psycopg_pool import AsyncConnectionPool\n"
    "from notification.config import load_settings\n"
    "from notification.reports.sending import send_due_report\n"
    "async def tick():\n"
    "    settings = load_settings()\n"
    "    async with AsyncConnectionPool(settings.psycopg_conninfo, kwargs={'autocommit': True}) as pool:\n"
    "        print(await send_due_report(pool, settings, dt.datetime.now(dt.UTC)), flush=True)\n"
    "asyncio.run(tick())\n",
)


async def test_a_sender_killed_mid_data_leaves_the_report_to_another_once_its_lease_runs_out(
    settings: Settings,
    smtp_server: SmtpServer,
    mail: RecordingHandler,
    pool: AsyncConnectionPool,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    report = {
        "SMTP_URL": smtp_server.url,
        "REPORT_RECIPIENTS": RECIPIENT,
        "REPORT_FROM": SENDER,
        "REPORT_CRON": "0 0 * * *",
        "REPORT_TIMEZONE": "UTC",
        "SMTP_TIMEOUT_S": "30",
    }
    # A slow server: the first sender has handed over its message and waits for the answer.
    mail.delay_s = 60
    first = start_worker(command=ONE_TICK, **report)
    await wait_for(lambda: _async(mail.data_started), lambda n: n == 1, timeout_s=30, interval_s=0.02)
    [(status, attempts, leased_until)] = _rows(settings, "SELECT status, attempts, leased_until FROM report_deliveries")
    assert (status, attempts) == ("pending", 1)
    assert isinstance(leased_until, dt.datetime)
    first.kill()
    mail.delay_s = 0

    # Another sender: nothing while the dead one's lease holds, the report once it has run out.
    other = replace(
        settings,
        smtp_url=smtp_server.url,
        report_recipients=(RECIPIENT,),
        report_from=SENDER,
        report_cron="0 0 * * *",
        report_timezone="UTC",
        smtp_timeout_s=30,
    )
    assert await send_due_report(pool, other, leased_until - dt.timedelta(seconds=1)) is Outcome.BUSY
    assert mail.data_started == 1
    assert await send_due_report(pool, other, leased_until) is Outcome.SENT

    assert _rows(settings, "SELECT status, attempts, leased_until FROM report_deliveries") == [("sent", 2, None)]
    # The killed sender's connection closed before the server answered its DATA: one message
    # delivered, under the day's one Message-ID (so a server that had kept both could tell them apart).
    [received] = mail.messages()
    day = leased_until.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    assert received.message["Message-ID"] == scheduled_message_id(day, SENDER)
    assert mail.data_started == 2


async def _async(value: int) -> int:
    return value
