"""The client directory's SQL (``queries.sql``), and the audience of a mailing's filter written once:
the planner (psycopg), the audience counts and the preview (SQLAlchemy) all select its clients
with the same fragments."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql
from sqlalchemy import ColumnElement, TextClause

from notification.lib.sql import load

statements = load(__package__, "queries.sql")


def _audience(operator_codes: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """The fragments a filter needs, with their parameter: an empty list filters nothing (a mailing
    with both lists empty reaches everyone)."""
    given = (("audience_by_operator_code", "operator_codes", operator_codes), ("audience_by_tag", "tags", tags))
    return [(fragment, parameter, list(values)) for fragment, parameter, values in given if values]


def audience_filter(operator_codes: Sequence[str], tags: Sequence[str]) -> sql.Composable:
    """The filter for a psycopg statement over ``clients``; the caller passes ``operator_codes`` and
    ``tags`` among its parameters."""
    conditions = [sql.SQL(statements[fragment]) for fragment, _, _ in _audience(operator_codes, tags)]
    return sql.SQL(" AND ").join([sql.SQL("TRUE"), *conditions])


def audience_conditions(operator_codes: Sequence[str], tags: Sequence[str]) -> list[ColumnElement[bool]]:
    """The filter as conditions of a SQLAlchemy query over ``clients``, their values bound."""
    conditions: list[ColumnElement[bool]] = []
    for fragment, parameter, values in _audience(operator_codes, tags):
        clause: TextClause = statements.text(fragment).bindparams(**{parameter: values})
        conditions.append(clause)  # type: ignore[arg-type]  # a text condition stands where a boolean column does
    return conditions
