"""``notification stats verify`` and ``notification stats rebuild``: the counters against the messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from psycopg import AsyncConnection

from notification.config import PREFIX, get_settings
from notification.stats.counters import Rebuilt, Verification, rebuild_counters, verify_counters

T = TypeVar("T")


def _run(action: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    settings = get_settings()
    if not settings.database_url:
        raise click.UsageError(f"{PREFIX}DATABASE_URL is not set")

    async def run() -> T:
        async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            return await action(conn)

    return asyncio.run(run())


@click.group(name="stats", help="Message counters behind the statistics and metrics.")
def stats() -> None:
    pass


@stats.command(name="verify", help="Compare the counters with a full count of the messages; exit 1 on any difference.")
def verify() -> None:
    started = time.perf_counter()
    result: Verification = _run(verify_counters)
    for difference in result.differences():
        click.echo(str(difference))
    elapsed = time.perf_counter() - started
    if not result.ok:
        click.echo(
            f"{len(result.counts)} counter(s), {len(result.sends)} minute(s) of sends"
            f" and {0 if result.clients is None else 1} client count differ from the messages"
            f" ({elapsed:.1f} s); `notification stats rebuild` counts them again",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"counters match the messages ({elapsed:.1f} s)")


@stats.command(name="rebuild", help="Count every mailing's messages again (writers wait meanwhile).")
def rebuild() -> None:
    started = time.perf_counter()
    result: Rebuilt = _run(rebuild_counters)
    click.echo(
        f"counters rebuilt: {result.count_rows} counter row(s), {result.sends_rows} minute(s) of sends"
        f" ({time.perf_counter() - started:.1f} s)"
    )
