"""`notification dev` as a newcomer runs it: everything starts, and Ctrl-C, SIGTERM or a kill -9 followed
by another run leave no PostgreSQL, worker or fake-provider process behind. The process table is read
from /proc, so these tests run on Linux only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from notification.dev.embedded_db import SERVER_USER, EmbeddedPostgres, EmbeddedPostgresError, server_binaries
from tests.servers import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
INITDB_TRANSCRIPT = "Success. You can now start the database server"


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            msg = f"not within {timeout_s:.0f} s: {what}"
            raise AssertionError(msg)
        time.sleep(0.1)


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int  # clock ticks after boot: with the pid, names one process even if the pid is reused
    command: str

    def alive(self) -> bool:
        try:
            return _stat(self.pid)[1] == self.started
        except OSError:
            return False


def _stat(pid: int) -> tuple[int, int]:
    """(parent pid, start time) of a live, non-zombie process."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        raise ProcessLookupError(pid)
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> list[Proc]:
    parents: dict[int, int] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)], started[int(entry.name)] = _stat(int(entry.name))
            except OSError:
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid:
                frontier.append(child)
                try:
                    command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                found.append(Proc(child, started[child], command.strip()))
    return found


@dataclass
class DevRun:
    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    provider_port: int = field(default_factory=free_port)
    oidc_port: int = field(default_factory=free_port)
    smsc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started: list[Proc] = field(default_factory=list)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFICATION_")}
        env |= {"NOTIFICATION_DATA_DIR": str(self.data_dir), "NOTIFICATION_WORKER_METRICS_PORT": "0"}
        command = [sys.executable, "-m", "notification", "dev", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            # A session of its own, as a terminal gives the command it runs: Ctrl-C goes to that group.
            self.process = subprocess.Popen(
                [
                    *command,
                    "--provider-port",
                    str(self.provider_port),
                    "--oidc-port",
                    str(self.oidc_port),
                    "--smsc-port",
                    str(self.smsc_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def console(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> list[Proc]:
        """Waits for the API (database and migrations included), the fake provider and the worker,
        and returns every process the command started."""
        assert self.process is not None

        def answers(url: str) -> bool:
            assert self.process is not None
            assert self.process.poll() is None, f"dev exited early:\n{self.console()}"
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(lambda: answers(f"http://127.0.0.1:{self.port}/ready"), READY_TIMEOUT_S, "the API is ready")
        wait_until(
            lambda: answers(f"http://127.0.0.1:{self.provider_port}/_fake/received"), READY_TIMEOUT_S, "fake provider"
        )
        wait_until(lambda: "Starting worker" in self.console(), READY_TIMEOUT_S, "the worker is running")
        self.started = descendants(self.process.pid)
        commands = [p.command for p in self.started]
        assert any(f"-D {self.data_dir}/pgdata" in c for c in commands), commands
        assert any("procrastinate" in c and c.endswith("worker") for c in commands), commands
        assert any("fake-provider" in c for c in commands), commands
        return self.started

    def wait_exit(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


def assert_all_gone(processes: list[Proc]) -> None:
    wait_until(
        lambda: not [p for p in processes if p.alive()],
        STOP_TIMEOUT_S,
        f"every process stopped; still running: {[p for p in processes if p.alive()]}",
    )


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder outside pytest's temporary tree: as root, the server runs as another user who
    must traverse to it, and pytest makes its tree private again whenever a session starts."""
    folder = Path(tempfile.mkdtemp(prefix="notification-dev-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dev_runs(data_dir: Path, tmp_path: Path) -> Iterator[Callable[[], DevRun]]:
    runs: list[DevRun] = []

    def new_run() -> DevRun:
        run = DevRun(data_dir, tmp_path / f"console-{len(runs)}.log")
        run.start()
        runs.append(run)
        return run

    yield new_run
    for run in runs:
        run.stop()
    leftovers = [p for run in runs for p in run.started if p.alive()]
    for proc in leftovers:
        os.kill(proc.pid, signal.SIGKILL)


def test_ctrl_c_stops_everything_and_the_console_shows_a_summary(dev_runs: Callable[[], DevRun]) -> None:
    run = dev_runs()
    started = run.wait_ready()
    assert run.process is not None

    os.killpg(run.process.pid, signal.SIGINT)

    assert run.wait_exit() == 0
    assert_all_gone(started)
    console = run.console()
    assert "PostgreSQL ready in" in console
    assert f"Swagger UI  http://127.0.0.1:{run.port}/docs" in console
    # The fake SMSC runs beside the fake HTTP provider, both stored with an example route.
    assert f"SMSC        127.0.0.1:{run.smsc_port} (fake)" in console
    assert "routing     stored: fake-smsc for operator codes 900-929" in console
    assert console.rstrip().endswith("stopped.")
    # The server's own chatter is in its log under the data folder, not on the console.
    server_log = (run.data_dir / "postgres.log").read_text()
    for chatter in (INITDB_TRANSCRIPT, "database system is ready to accept connections", "Running upgrade"):
        assert chatter not in console
    assert INITDB_TRANSCRIPT in server_log
    assert "database system is shut down" in server_log


def test_sigterm_stops_everything(dev_runs: Callable[[], DevRun]) -> None:
    run = dev_runs()
    started = run.wait_ready()
    assert run.process is not None

    run.process.send_signal(signal.SIGTERM)

    assert run.wait_exit() == 0
    assert_all_gone(started)


def _leave_a_server_running(data_dir: Path) -> Proc:
    """What an older `dev`, or one without the parent-death signal, left: a daemonised server."""
    pgdata = data_dir / "pgdata"
    pg_ctl = [str(server_binaries() / "bin" / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "left.log")]
    subprocess.run(
        [*pg_ctl, "-w", "-o", f"-k {data_dir / 'run'} -h ''", "start"],
        check=True,
        capture_output=True,
        **({"user": SERVER_USER, "group": SERVER_USER, "extra_groups": []} if os.geteuid() == 0 else {}),
        timeout=60,
    )
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    return Proc(pid, _stat(pid)[1], "postgres left running")


def test_a_run_after_a_kill_9_starts_and_leaves_nothing_behind(dev_runs: Callable[[], DevRun]) -> None:
    first = dev_runs()
    started_first = first.wait_ready()
    assert first.process is not None
    first.process.kill()
    first.wait_exit()
    # Its children stop by themselves (the kernel tells them their parent died).
    assert_all_gone(started_first)
    leftover = _leave_a_server_running(first.data_dir)
    assert leftover.alive()

    second = dev_runs()
    started_second = second.wait_ready()
    assert second.process is not None
    assert not leftover.alive()
    os.killpg(second.process.pid, signal.SIGINT)

    assert second.wait_exit() == 0
    assert_all_gone(started_second)
    assert "stopping the server a previous run left running" in (first.data_dir / "postgres.log").read_text()


def test_a_stale_pid_file_does_not_stop_the_next_start_and_a_live_run_keeps_its_data(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        with pytest.raises(EmbeddedPostgresError, match="another process runs the PostgreSQL"):
            EmbeddedPostgres(data_dir).start()
    finally:
        server.stop()
    # A pid file naming a live process that is no server of this data (here, this test).
    (data_dir / "pgdata" / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}/pgdata\n")

    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        with psycopg.connect(server.get_uri(), connect_timeout=5) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    assert "removing the stale postmaster.pid" in (data_dir / "postgres.log").read_text()
