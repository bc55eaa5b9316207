"""Named SQL statements, kept in ``.sql`` files beside the code that runs them and read once at import.

A file holds blocks, each opened by ``-- name: <name>``; comment lines are dropped. In a block:

- ``{status.sent}`` stands for the quoted value of an enum given to :func:`load` under that prefix
  (``enums={"status": MessageStatus}``): a renamed or mistyped value fails at import rather than
  matching no row;
- ``{other_block}`` is replaced by that block of the same file or of an included one: a fragment
  (a condition, the columns a state change writes) is written once and composed by name;
- any other ``{...}`` is left for ``psycopg.sql.SQL.format`` at run time (:meth:`Statements.composed`),
  for SQL only known then (a mailing's client filter, a column name).

Parameters are written in psycopg's style, ``%(name)s``, the one style of every ``.sql`` file. psycopg
runs a statement as it stands (``statements["name"]``); SQLAlchemy gets it as ``text()`` with its
``:name`` binds (:meth:`Statements.text`), converted at load. A ``:name`` bind or a bare ``%`` in a
file fails at import, so the conversion never meets what it could misread.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib.resources import files

from psycopg import sql
from sqlalchemy import TextClause, text

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_ENUM_VALUE = re.compile(r"\{(\w+)\.(\w+)\}")
_BLOCK_REFERENCE = re.compile(r"\{(\w+)\}")
_PSYCOPG_PARAMETER = re.compile(r"%\((\w+)\)s")
# What SQLAlchemy's text() would read as a bind: a colon, not part of a `::` cast, then a name.
_COLON_PARAMETER = re.compile(r"(?<![:\w]):[A-Za-z_]\w*")
_PERCENT_WRITTEN_RIGHT = re.compile(r"%\(\w+\)s|%%")
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


class Statements(Mapping[str, str]):
    """The named statements of one ``.sql`` file (and of the files it includes), psycopg-ready."""

    def __init__(self, origin: str, statements: Mapping[str, str]) -> None:
        self.origin = origin
        self._statements = dict(statements)

    def __getitem__(self, name: str) -> str:
        return self._statements[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)

    def composed(self, name: str, **parts: sql.Composable) -> sql.Composed:
        """The statement with its remaining ``{placeholders}`` filled with SQL built at run time."""
        return sql.SQL(self[name]).format(**parts)

    def text(self, name: str, **identifiers: str) -> TextClause:
        """The statement for a SQLAlchemy session, ``{placeholders}`` filled with quoted identifiers."""
        return _as_text(self.origin, name, self[name], tuple(sorted(identifiers.items())))


@cache
def _as_text(origin: str, name: str, statement: str, identifiers: tuple[tuple[str, str], ...]) -> TextClause:
    if identifiers:
        parts = {key: sql.Identifier(value) for key, value in identifiers}
        statement = sql.SQL(statement).format(**parts).as_string()
    # A bind straight before a `::` cast is not one to text() (it takes `:a::int` for a cast of
    # a literal): a space keeps it a bind and means the same to PostgreSQL.
    return text(_PSYCOPG_PARAMETER.sub(_colon_bind, statement).replace("%%", "%"))


def _colon_bind(match: re.Match[str]) -> str:
    followed_by_cast = match.string.startswith(":", match.end())
    return f":{match.group(1)} " if followed_by_cast else f":{match.group(1)}"


def load(
    package: str | None,
    filename: str,
    *,
    enums: Mapping[str, type[enum.Enum]] | None = None,
    include: Iterable[Statements] = (),
) -> Statements:
    """The statements of ``filename`` in ``package``, their enum values and fragments substituted.

    Statements of the ``include``-d files can be composed into this file's blocks and are part of
    the result, so that a caller reads both from one place; a name defined twice fails."""
    if package is None:
        msg = "load() is called with the __package__ of a module inside a package"
        raise ValueError(msg)
    origin = f"{package.rsplit('.', 1)[-1]}/{filename}"
    source = files(package).joinpath(filename).read_text(encoding="utf-8")
    included: dict[str, str] = {}
    for other in include:
        if clash := sorted(set(included) & set(other)):
            msg = f"{origin}: {clash} defined by two included files"
            raise ValueError(msg)
        included.update(other)
    own = parse(origin, source, enums or {}, included)
    if clash := sorted(set(own) & set(included)):
        msg = f"{origin}: {clash} already defined by an included file"
        raise ValueError(msg)
    return Statements(origin, {**included, **own})


def parse(
    origin: str, source: str, enums: Mapping[str, type[enum.Enum]], included: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The blocks of ``source`` by name, expanded; raises on a value an enum lacks, a block that
    includes itself, or a parameter written in another style than ``%(name)s``."""
    parts = _NAME.split(source)
    raw = {name: _without_comments(body) for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    known = dict(included or {})

    def enum_literal(match: re.Match[str]) -> str:
        prefix, member = match.groups()
        enum_type = enums.get(prefix)
        if enum_type is None:
            return match.group(0)
        try:
            value = enum_type(member).value
        except ValueError:
            msg = f"{origin} names {match.group(0)}, which {enum_type.__name__} does not have"
            raise ValueError(msg) from None
        return f"'{value}'"

    def expand(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in seen:
            msg = f"{origin}: {name} includes itself"
            raise ValueError(msg)

        def include(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref in raw:
                return expand(ref, (*seen, name))
            return known.get(ref, match.group(0))

        return _BLOCK_REFERENCE.sub(include, _ENUM_VALUE.sub(enum_literal, raw[name]))

    expanded = {name: expand(name) for name in raw}
    for name, statement in expanded.items():
        _check_parameters(origin, name, statement)
    return expanded


def _check_parameters(origin: str, name: str, statement: str) -> None:
    outside_strings = _STRING_LITERAL.sub("''", statement)
    if found := _COLON_PARAMETER.search(outside_strings):
        msg = f"{origin}: {name} writes a parameter as {found.group(0)}; write %({found.group(0)[1:]})s"
        raise ValueError(msg)
    if "%" in _PERCENT_WRITTEN_RIGHT.sub("", statement):
        msg = f"{origin}: {name} has a bare %; parameters are %(name)s, a literal percent is %%"
        raise ValueError(msg)
    if found_enum := _ENUM_VALUE.search(outside_strings):
        msg = f"{origin}: {name} names {found_enum.group(0)}, an enum prefix load() was not given"
        raise ValueError(msg)


def _without_comments(block: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("--")).strip()
