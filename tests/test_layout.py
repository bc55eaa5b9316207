"""The package's shape: entities never depend on the engine, and the API process never loads it."""

from __future__ import annotations

import ast
import json
import re
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
    env = {"NOTIFICATION_API_TOKENS": "t", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "notification.app" in loaded
    assert "notification.jobs" in loaded
    assert not {m for m in loaded if m.startswith("notification.delivery")}
    assert "notification.provider.client" not in loaded


# A statement as the project writes one: an upper-case verb, then what only SQL says next.
_SQL_STATEMENT = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s.*\bSET\s|DELETE\s+FROM\s|WITH\s+(RECURSIVE\s+)?\w+(\(\w+\))?\s+AS\s"
    r"|SET\s+TRANSACTION\s|ANALYZE\s|LOCK\s+TABLE\s)",
    re.DOTALL,
)


def _sql_strings(path: Path, root: Path = PACKAGE) -> list[str]:
    strings = [
        node
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_STATEMENT.match(node.value)
    ]
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value.strip().splitlines()[0]}"
        for node in sorted(strings, key=lambda node: (node.lineno, node.col_offset))
    ]


def test_sql_statements_live_in_sql_files() -> None:
    """Every statement is a named block of a ``.sql`` file (notification.lib.sql), where its enum
    values are checked at load and its parameters written in one style; none is a Python string."""
    assert [found for path in sorted(PACKAGE.rglob("*.py")) for found in _sql_strings(path)] == []


def test_the_walk_sees_sql_in_python_strings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'A = "SELECT 1"\n'
        'B = """\n    WITH doomed AS (SELECT 1)\nDELETE FROM t"""\n'
        'C = f"UPDATE messages SET status = {1}"\n'
        'D = "DELETE FROM t"\n'
        'E = "INSERT INTO t VALUES (1)"\n'
        'F = "WITH RECURSIVE present(value) AS (SELECT 1) SELECT 1"\n'
        'G = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"\n'
        'H = "ANALYZE messages"\n'
        '"""Update the mailing; select what is due."""\n'
    )
    found = [line.split(": ", 1)[1] for line in _sql_strings(sample, tmp_path)]
    assert found == [
        "SELECT 1",
        "WITH doomed AS (SELECT 1)",
        "UPDATE messages SET status =",
        "DELETE FROM t",
        "INSERT INTO t VALUES (1)",
        "WITH RECURSIVE present(value) AS (SELECT 1) SELECT 1",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "ANALYZE messages",
    ]


def test_no_module_imports_a_controller_but_the_app() -> None:
    """Controllers only call services: what two of them share (a path parameter, a follow-up of a
    change) lives in a service or a dependency module, never in another controller."""
    importers = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "app.py"
        for module in sorted(_imported_modules(path))
        if "controllers" in module.split(".")
    ]
    assert importers == []
