"""``notification report send`` and ``notification report show``."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from psycopg import AsyncConnection

from notification.config import PREFIX, Settings, get_settings

T = TypeVar("T")


@click.group(name="report", help="The daily statistics report: send one now, or print it.")
def report_group() -> None:
    pass


def _day_option(function: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--date",
        "day",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        default=None,
        help="The day to report on (YYYY-MM-DD) in NOTIFICATION_REPORT_TIMEZONE; default: yesterday there.",
    )(function)


def _run(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    if not settings.database_url:
        raise click.UsageError(f"{PREFIX}DATABASE_URL is not set")

    async def run() -> T:
        async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(run())


def _report_day(settings: Settings, day: dt.datetime | None, now: dt.datetime) -> dt.date:
    from notification.reports.content import previous_day

    return day.date() if day else previous_day(settings.report_timezone, now)


@report_group.command(name="show", help="Print the plain-text part of a day's report.")
@_day_option
def show(day: dt.datetime | None) -> None:
    from notification.reports.content import build_report
    from notification.reports.rendering import render_text

    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    report_day = _report_day(settings, day, now)
    report = _run(settings, lambda conn: build_report(conn, report_day, settings.report_timezone, now))
    click.echo(render_text(report), nl=False)


@report_group.command(
    name="send",
    help="Send a day's report now (it does not stand in for the scheduled report of that day).",
)
@_day_option
@click.option(
    "--to",
    "recipients",
    multiple=True,
    metavar="ADDRESS",
    help="A recipient (repeatable); default: NOTIFICATION_REPORT_RECIPIENTS.",
)
def send(day: dt.datetime | None, recipients: tuple[str, ...]) -> None:
    from notification.reports.sending import send_report
    from notification.reports.smtp import SmtpFailure, parse_smtp_url

    settings = get_settings()
    to = list(recipients or settings.report_recipients)
    if not to:
        raise click.UsageError(f"no recipient: pass --to ADDRESS or set {PREFIX}REPORT_RECIPIENTS")
    if not settings.smtp_url:
        raise click.UsageError(f"{PREFIX}SMTP_URL is not set")
    now = dt.datetime.now(dt.UTC)
    report_day = _report_day(settings, day, now)
    try:
        sent = _run(settings, lambda conn: send_report(conn, settings, report_day, to, now))
    except SmtpFailure as failure:
        kind = "temporary failure, try again later" if failure.temporary else "refused"
        raise click.ClickException(f"report not sent ({kind}): {failure.description}") from None
    where = parse_smtp_url(settings.smtp_url).describe()
    day_name = f"{report_day.isoformat()} ({settings.report_timezone})"
    click.echo(f"report of {day_name} sent to {', '.join(sent.recipients)} via {where}")
    if sent.refused:
        click.echo(f"refused by the server: {', '.join(sent.refused)}", err=True)
