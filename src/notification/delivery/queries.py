"""The engine's SQL: the named statements of ``queries.sql``, read once at import.

Statuses and error kinds are written ``{status.sent}`` / ``{error_kind.deadline}`` in the file
and come from the enums here, so a renamed or mistyped value fails at import rather than
matching no row. ``{name}`` of another block composes fragments written once; whatever else
stands in braces is left for ``psycopg.sql.SQL.format`` (see :func:`composed`).
"""

from __future__ import annotations

import re
from importlib.resources import files

from psycopg import sql

from notification.messages.models import ErrorKind, MessageStatus

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_ENUM_VALUE = re.compile(r"\{(status|error_kind)\.(\w+)\}")
_BLOCK_REFERENCE = re.compile(r"\{(\w+)\}")
_ENUMS: dict[str, type[MessageStatus] | type[ErrorKind]] = {"status": MessageStatus, "error_kind": ErrorKind}


def _enum_literal(match: re.Match[str]) -> str:
    enum_type = _ENUMS[match.group(1)]
    try:
        value = enum_type(match.group(2))
    except ValueError:
        msg = f"queries.sql names {match.group(0)}, which {enum_type.__name__} does not have"
        raise ValueError(msg) from None
    return f"'{value.value}'"


def _without_comments(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--")).strip()


def parse(source: str) -> dict[str, str]:
    parts = _NAME.split(source)
    raw = {name: _without_comments(body) for name, body in zip(parts[1::2], parts[2::2], strict=True)}

    def expand(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in seen:
            msg = f"queries.sql: {name} includes itself"
            raise ValueError(msg)

        def include(match: re.Match[str]) -> str:
            ref = match.group(1)
            return expand(ref, (*seen, name)) if ref in raw else match.group(0)

        return _BLOCK_REFERENCE.sub(include, _ENUM_VALUE.sub(_enum_literal, raw[name]))

    return {name: expand(name) for name in raw}


queries: dict[str, str] = parse(files(__package__).joinpath("queries.sql").read_text(encoding="utf-8"))


def composed(name: str, **parts: sql.Composable) -> sql.Composed:
    """A statement whose remaining ``{placeholders}`` are filled with SQL built at run time."""
    return sql.SQL(queries[name]).format(**parts)
