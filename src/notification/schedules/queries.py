"""The named statements of ``queries.sql``, read once at import."""

from __future__ import annotations

import re
from importlib.resources import files

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(source: str) -> dict[str, str]:
    parts = _NAME.split(source)
    return {
        name: "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--")).strip()
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


queries: dict[str, str] = parse(files(__package__).joinpath("queries.sql").read_text(encoding="utf-8"))
