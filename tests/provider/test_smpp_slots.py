"""Bind slots shared by processes: never more binds than the account allows, and a killed
process's slot back within seconds. Real processes, a real PostgreSQL, the fake SMSC over TCP."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from notification.dev.fake_smsc import FakeSmscOptions, RunningFakeSmsc, serve_fake_smsc
from notification.provider.smpp import SmppProvider
from notification.provider.smpp_slots import PgBindSlots
from tests.provider.smpp_slot_holder import PROVIDER, settings
from tests.waiting import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Holder:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.states: list[str] = []

    async def expect(self, accept: Callable[[str], bool], timeout_s: float = 60) -> str:
        # Generous: a process's start (its imports) takes seconds on a busy machine; nothing timed here.
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    pytest.fail(f"holder exited; states seen: {self.states}")
                if line.startswith("STATE "):
                    state = line.removeprefix("STATE ").strip()
                    self.states.append(state)
                    if accept(state):
                        return state


@pytest.fixture
async def fake_smsc() -> AsyncIterator[RunningFakeSmsc]:
    async with serve_fake_smsc(FakeSmscOptions(system_id="esme", password="secret")) as fake:
        yield fake


@pytest.fixture
async def start_holder(
    database_url: str, fake_smsc: RunningFakeSmsc
) -> AsyncIterator[Callable[[int], Awaitable[Holder]]]:
    started: list[Holder] = []

    async def start(slots: int) -> Holder:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.provider.smpp_slot_holder",
            database_url,
            str(fake_smsc.port),
            str(slots),
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        holder = Holder(process)
        started.append(holder)
        return holder

    yield start
    for holder in started:
        if holder.process.returncode is None:
            holder.process.kill()
        await holder.process.wait()


async def value(x: object) -> object:
    return x


async def test_two_processes_never_hold_more_binds_than_the_slots(
    database_url: str, fake_smsc: RunningFakeSmsc, start_holder: Callable[[int], Awaitable[Holder]]
) -> None:
    first = await start_holder(1)
    await first.expect(lambda s: s == "bound")
    second = await start_holder(1)
    await second.expect(lambda s: s.startswith("waiting: every bind slot"))
    assert fake_smsc.bound_now == 1
    assert await PgBindSlots(database_url, PROVIDER, 1).held() == 1

    # The first stops: it unbinds and gives its slot back, and the second takes it.
    first.process.send_signal(signal.SIGTERM)
    await first.expect(lambda s: s == "closed")
    await second.expect(lambda s: s == "bound")
    assert fake_smsc.unbinds == 1
    assert fake_smsc.max_binds_seen == 1
    assert len([b for b in fake_smsc.binds() if b.accepted]) == 2


async def test_a_killed_process_gives_its_slot_back_within_seconds(
    database_url: str, fake_smsc: RunningFakeSmsc, start_holder: Callable[[int], Awaitable[Holder]]
) -> None:
    holder = await start_holder(1)
    await holder.expect(lambda s: s == "bound")
    slots = PgBindSlots(database_url, PROVIDER, 1)
    here = SmppProvider(PROVIDER, settings(fake_smsc.port, 1), slots=slots)
    await here.open()
    try:
        await wait_for(lambda: value(here.last_error), lambda e: bool(e and "every bind slot" in str(e)))
        holder.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        assert await here.wait_bound(10)
        assert time.monotonic() - killed_at < 5
        assert await slots.held() == 1
        assert fake_smsc.max_binds_seen == 1
    finally:
        await here.aclose()
    await wait_for(slots.held, lambda n: n == 0, timeout_s=5)


async def test_a_slot_whose_connection_breaks_ends_the_bind_and_is_taken_again(
    database_url: str, fake_smsc: RunningFakeSmsc
) -> None:
    slots = PgBindSlots(database_url, PROVIDER, 1)
    provider = SmppProvider(PROVIDER, settings(fake_smsc.port, 1), slots=slots)
    await provider.open()
    try:
        assert await provider.wait_bound(10)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'smpp bind slot%'"
            )
        # The slot could be another process's by now: the bind ends, then a slot is taken anew.
        await wait_for(lambda: value(fake_smsc.unbinds), lambda n: n == 1, timeout_s=10)
        await wait_for(lambda: value(provider.binds_made), lambda n: n == 2, timeout_s=10)
        assert await slots.held() == 1
        assert fake_smsc.max_binds_seen == 1
    finally:
        await provider.aclose()
