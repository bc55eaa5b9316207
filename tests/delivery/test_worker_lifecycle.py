"""A worker opens what it needs when it runs and closes all of it when it stops; importing its
module opens nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from notification.config import PREFIX, Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import Api, create_mailing
from tests.delivery.observe import counts, insert_clients, wait_for_log
from tests.servers import free_port
from tests.waiting import wait_for
from tests.workers import WorkerProcess

# What asyncio and the interpreter say, in debug mode, about what a process left open or unfinished.
LEFTOVERS = ("unclosed", "Task was destroyed but it is pending", "Exception ignored", "was never awaited")


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


# The worker as procrastinate's CLI runs it (in asyncio's debug mode, every warning shown), then
# an inventory of what the run left behind: tasks still on the loop, sessions and connections
# still open or finalised unclosed, threads. Warnings alone would miss a session never finalised
# before the process exits.
_RUN_AND_TAKE_STOCK = """
import asyncio, gc, json, threading, warnings
import aiohttp, psycopg
from notification.worker import app

async def run():
    async with app.open_async():
        await app.run_worker_async()
    return [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tasks = asyncio.run(run(), debug=True)
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(timeout=5)
    gc.unfreeze()  # the worker module froze what importing built
    gc.collect()
    alive = gc.get_objects()
left = {
    "tasks": tasks,
    "sessions": sum(isinstance(o, aiohttp.ClientSession) and not o.closed for o in alive),
    "connections": sum(isinstance(o, psycopg.AsyncConnection) and not o.closed for o in alive),
    "threads": [t.name for t in threading.enumerate() if t is not threading.main_thread()],
    "warnings": [str(w.message) for w in caught if issubclass(w.category, (ResourceWarning, RuntimeWarning))],
}
print("left open: " + json.dumps(left))
"""


async def test_worker_stopped_by_sigterm_exits_0_leaving_no_task_session_connection_or_thread(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, tmp_path: Path
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 20)
    port = free_port()
    worker = WorkerProcess(
        settings,
        fake_provider.base_url,
        tmp_path / "worker.log",
        command=["-X", "dev", "-c", _RUN_AND_TAKE_STOCK],
        WORKER_METRICS_PORT=str(port),
    )
    try:
        await wait_for_log(worker, "Starting worker")
        # Real work first: provider connections, a batch's connection, the watcher's.
        mailing = await create_mailing(client)
        await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 20)
        assert not _port_is_free(port), "the running worker serves its metrics"
    finally:
        worker.stop()  # SIGTERM
    assert worker.process.returncode == 0
    assert '"event": "worker stopped"' in worker.log_path.read_text()
    assert [line for line in worker.log_lines() if any(leftover in line for leftover in LEFTOVERS)] == []
    assert _port_is_free(port)
    stock = [line for line in worker.log_lines() if line.startswith("left open: ")]
    assert len(stock) == 1, worker.log_lines()[-20:]
    assert json.loads(stock[0].removeprefix("left open: ")) == {
        "tasks": [],
        "sessions": 0,
        "connections": 0,
        "threads": [],
        "warnings": [],
    }


_IMPORT_CHECK = """
import gc, json, os, threading
import notification.worker
import aiohttp
from notification.provider.http import HttpProvider
gc.unfreeze()  # the module freezes what importing built: bring it back into view
def target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the descriptor listdir itself used
        return ""
sockets = [fd for fd in os.listdir("/proc/self/fd") if target(fd).startswith("socket:")]
print(json.dumps({
    "sockets": len(sockets),
    "threads": [t.name for t in threading.enumerate()],
    "sessions": sum(isinstance(o, aiohttp.ClientSession) for o in gc.get_objects()),
    "provider_clients": sum(isinstance(o, HttpProvider) for o in gc.get_objects()),
}))
"""


def test_importing_the_worker_module_binds_no_socket_and_builds_no_provider_client(settings: Settings) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env |= {f"{PREFIX}DATABASE_URL": settings.psycopg_conninfo, f"{PREFIX}WORKER_METRICS_PORT": str(port)}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout.splitlines()[-1])
    assert found == {"sockets": 0, "threads": ["MainThread"], "sessions": 0, "provider_clients": 0}
