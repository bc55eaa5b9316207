"""The package's shape: entities never depend on the engine, and the API process never loads it;
the development stand-ins stay out of the service; job plumbing has one home."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "notification"
ENTITIES = ("clients", "mailings", "messages")
DEV = "notification.dev"
# The commands of cli.py that run the stand-ins (``dev`` and what it starts), by their top-level
# function or class: the only code of the service that may import them, and only when it runs.
DEV_RUNNERS = {"dev", "_DevRun", "_start_database", "fake_provider"}
# The worker runs the engine; nothing else outside it imports it.
ENGINE_RUNNERS = {"worker.py"}
JOBS = "jobs.py"
JOB_HELPERS = {"pool_of", "settings_of", "context_value", "schedule_planning"}


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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(path: Path) -> list[tuple[str, str | None]]:
    """Each module imported when the code runs (``if TYPE_CHECKING:`` blocks left out), with the
    top-level function or class it is imported in (None: at import time)."""
    found: list[tuple[str, str | None]] = []

    def visit(node: ast.AST, owner: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for orelse in child.orelse:
                    visit(orelse, owner)
                continue
            inner = owner
            if owner is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = child.name
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, inner))
                found.extend((f"{child.module}.{alias.name}", inner) for alias in child.names)
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), None)
    return found


def _service_modules() -> list[Path]:
    """Every module of the service, the development stand-ins aside."""
    return [path for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).parts[0] != "dev"]


def _of(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_only_the_dev_commands_import_the_development_stand_ins_and_only_when_they_run() -> None:
    offending = [
        f"{path.relative_to(PACKAGE)} imports {module}" + (f" in {owner}" if owner else " at import time")
        for path in _service_modules()
        for module, owner in _runtime_imports(path)
        if _of(module, DEV) and not (path.relative_to(PACKAGE) == Path("cli.py") and owner in DEV_RUNNERS)
    ]
    assert offending == []


def test_the_stand_in_check_sees_imports_at_import_time_and_in_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "from notification.dev import fake_provider\n"
        "if TYPE_CHECKING:\n"
        "    from notification.dev.mail_server import SmtpServer\n"
        "def dev():\n"
        "    import notification.dev.embedded_db\n"
    )
    found = _runtime_imports(sample)
    assert ("notification.dev.fake_provider", None) in found
    assert ("notification.dev.embedded_db", "dev") in found
    assert not [module for module, _ in found if module.startswith("notification.dev.mail_server")]


def test_no_module_outside_the_engine_imports_it_but_the_worker() -> None:
    offending = [
        f"{path.relative_to(PACKAGE)} imports {module}"
        for path in _service_modules()
        if path.relative_to(PACKAGE).parts[0] != "delivery" and str(path.relative_to(PACKAGE)) not in ENGINE_RUNNERS
        for module in sorted(_imported_modules(path))
        if _of(module, "notification.delivery")
    ]
    assert offending == []


def _defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_job_helpers_are_defined_in_the_jobs_module_only() -> None:
    copies = [
        f"{path.relative_to(PACKAGE)} defines {name}"
        for path in _service_modules()
        if path.name != JOBS or path.parent != PACKAGE
        for name in sorted(_defined_functions(path) & JOB_HELPERS)
    ]
    assert copies == []
    assert _defined_functions(PACKAGE / JOBS) >= JOB_HELPERS


def _task_queues(path: Path) -> list[ast.expr]:
    """The ``queue=`` of every ``@<blueprint>.task(...)`` of the module."""
    queues = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "task"
                ):
                    queues.extend(keyword.value for keyword in decorator.keywords if keyword.arg == "queue")
    return queues


def _calls(path: Path) -> set[str]:
    """What the module calls, as written (``plan_mailing.configure``) and by method name (``configure_task``)."""
    called: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            called.add(ast.unparse(node.func))
            if isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
    return called


def test_every_task_takes_its_queue_from_the_jobs_module_and_planning_is_deferred_there() -> None:
    tasks = [path for path in _service_modules() if path.name == "tasks.py"]
    assert len(tasks) >= 4  # delivery, idempotency, reports, stats
    misplaced = []
    for path in tasks:
        from_jobs = {module.removeprefix("notification.jobs.") for module in _imported_modules(path)}
        for queue in _task_queues(path):
            if not (isinstance(queue, ast.Name) and queue.id in from_jobs):
                misplaced.append(f"{path.relative_to(PACKAGE)}: queue={ast.unparse(queue)}")
    assert misplaced == []
    # Deferring by name, the way planning is deferred, happens in the jobs module alone; a task
    # object's own configure() never defers planning.
    deferring = [
        str(path.relative_to(PACKAGE))
        for path in _service_modules()
        if path != PACKAGE / JOBS
        and ("configure_task(" in path.read_text() or "plan_mailing.configure(" in path.read_text())
    ]
    assert deferring == []


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
    assert not {"notification.provider.http", "notification.provider.registry"} & loaded
    assert not {m for m in loaded if _of(m, DEV)}


def test_neither_the_worker_nor_the_command_line_loads_the_development_stand_ins() -> None:
    probe = (
        "import json, sys\n"
        "import notification.cli, notification.worker\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('notification'))))\n"
    )
    env = {"NOTIFICATION_API_TOKENS": "t" * 32, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert {"notification.cli", "notification.worker", "notification.jobs"} <= loaded
    assert not {m for m in loaded if _of(m, DEV)}


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
