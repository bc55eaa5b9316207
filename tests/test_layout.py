"""The package's shape: entities never depend on the engine, and the API process never loads it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "notification"
ENTITIES = ("clients", "mailings", "messages")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_entities_never_import_the_delivery_engine() -> None:
    reverse_edges = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for entity in ENTITIES
        for path in sorted((PACKAGE / entity).rglob("*.py"))
        for module in sorted(_imported_modules(path))
        if module == "notification.delivery" or module.startswith("notification.delivery.")
    ]
    assert reverse_edges == []


def test_the_walk_sees_an_import_of_the_engine(tmp_path: Path) -> None:
    """The check above would pass on an empty walk: prove it reads the import forms it guards."""
    sample = tmp_path / "sample.py"
    sample.write_text("from notification.delivery import tasks\nimport notification.delivery.sending\n")
    assert {"notification.delivery.tasks", "notification.delivery.sending"} <= _imported_modules(sample)


def test_the_api_process_does_not_load_the_engine_or_the_provider_client() -> None:
    probe = (
        "import json, sys\n"
        "from notification.app import create_app\n"
        "create_app()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('notification'))))\n"
    )
    env = {"NOTIFICATION_API_TOKENS": "t" * 32, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "notification.app" in loaded
    assert "notification.jobs" in loaded
    assert not {m for m in loaded if m.startswith("notification.delivery")}
    assert "notification.provider.client" not in loaded
