"""The client directory's SQL (``queries.sql``), and the audience of a mailing's filter written once:
the planner (psycopg), the audience counts and the preview (SQLAlchemy) all select its clients
with the same fragments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import ColumnElement, TextClause, bindparam
from sqlalchemy.dialects.postgresql import JSONB

from notification.lib.sql import load

statements = load(__package__, "queries.sql")


def _audience(
    operator_codes: Sequence[str], tags: Sequence[str], attributes: Mapping[str, str] | None = None
) -> list[tuple[str, str, Any]]:
    """The fragments a filter needs, with their parameter: an empty list or object filters nothing
    (a mailing with everything empty reaches everyone)."""
    given: tuple[tuple[str, str, Any], ...] = (
        ("audience_by_operator_code", "operator_codes", list(operator_codes)),
        ("audience_by_tag", "tags", list(tags)),
        ("audience_by_attributes", "attributes", dict(attributes or {})),
    )
    return [(fragment, parameter, values) for fragment, parameter, values in given if values]


def audience_filter(
    operator_codes: Sequence[str], tags: Sequence[str], attributes: Mapping[str, str] | None = None
) -> sql.Composable:
    """The filter for a psycopg statement over ``clients``; the caller passes ``operator_codes``,
    ``tags`` and ``attributes`` (as :func:`attributes_parameter`) among its parameters."""
    conditions = [sql.SQL(statements[fragment]) for fragment, _, _ in _audience(operator_codes, tags, attributes)]
    return sql.SQL(" AND ").join([sql.SQL("TRUE"), *conditions])


def attributes_parameter(attributes: Mapping[str, str] | None) -> Jsonb:
    """A filter's attributes as psycopg sends them to ``audience_by_attributes``."""
    return Jsonb(dict(attributes or {}))


def audience_conditions(
    operator_codes: Sequence[str], tags: Sequence[str], attributes: Mapping[str, str] | None = None
) -> list[ColumnElement[bool]]:
    """The filter as conditions of a SQLAlchemy query over ``clients``, their values bound."""
    conditions: list[ColumnElement[bool]] = []
    for fragment, parameter, values in _audience(operator_codes, tags, attributes):
        value = bindparam(parameter, values, type_=JSONB) if parameter == "attributes" else bindparam(parameter, values)
        clause: TextClause = statements.text(fragment).bindparams(value)
        conditions.append(clause)  # type: ignore[arg-type]  # a text condition stands where a boolean column does
    return conditions
