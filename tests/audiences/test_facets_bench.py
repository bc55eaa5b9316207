"""The facets benchmark runs at a tiny size, so that it keeps working between its real runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from notification.config import Settings

BENCH = Path(__file__).resolve().parents[2] / "bench" / "facets.py"


def test_the_facets_benchmark_runs_and_agrees_with_a_scan(settings: Settings) -> None:
    server = settings.psycopg_conninfo.rsplit("/", 1)[0] + "/postgres"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--clients", "2000", "--tags", "20", "--runs", "2", "--database-url", server],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GET /clients/facets" in done.stdout
    # The 20 tags and the empty one.
    assert "21 tags, 100 operator codes" in done.stdout
