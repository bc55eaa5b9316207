"""The provider package's SQL: the named statements of ``queries.sql``, read once at import.

The same file format as the delivery engine's (``-- name: ...`` blocks; comment lines dropped).
"""

from __future__ import annotations

import re
from importlib.resources import files

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _without_comments(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--")).strip()


def parse(source: str) -> dict[str, str]:
    parts = _NAME.split(source)
    return {name: _without_comments(body) for name, body in zip(parts[1::2], parts[2::2], strict=True)}


queries: dict[str, str] = parse(files(__package__).joinpath("queries.sql").read_text(encoding="utf-8"))
