"""The SQL loader: what a ``.sql`` file may say, and what it refuses at import rather than at run time."""

from __future__ import annotations

import enum

import pytest
from sqlalchemy.dialects import postgresql

from notification.lib.sql import Statements, parse


class Colour(enum.StrEnum):
    RED = "red"


ENUMS = {"colour": Colour}


def test_enum_values_fragments_and_run_time_placeholders() -> None:
    source = (
        "-- A file's own comment.\n"
        "-- name: red\n"
        "-- why it is red\n"
        "colour = {colour.red}\n"
        "-- name: paint\n"
        "UPDATE walls SET {red} WHERE id = %(id)s AND {scope} AND price::text LIKE 'x%%'\n"
    )
    statements = parse("sample.sql", source, ENUMS)
    assert statements == {
        "red": "colour = 'red'",
        "paint": "UPDATE walls SET colour = 'red' WHERE id = %(id)s AND {scope} AND price::text LIKE 'x%%'",
    }


def test_sqlalchemy_gets_the_same_statement_with_its_own_binds() -> None:
    statements = Statements("sample.sql", parse("sample.sql", "-- name: one\nSELECT %(a)s::int, '10%%', 'a:b'\n", {}))
    clause = statements.text("one")
    assert clause.text == "SELECT :a ::int, '10%', 'a:b'"
    assert str(clause.compile(dialect=postgresql.dialect())) == "SELECT %(a)s ::int, '10%%', 'a:b'"


def test_a_fragment_of_an_included_file_composes() -> None:
    shared = Statements("shared.sql", parse("shared.sql", "-- name: live\nstatus = 'live'\n", {}))
    own = parse("own.sql", "-- name: count_live\nSELECT count(*) FROM t WHERE {live}\n", {}, shared)
    assert own == {"count_live": "SELECT count(*) FROM t WHERE status = 'live'"}


def test_identifiers_fill_placeholders_for_sqlalchemy() -> None:
    statements = Statements("s.sql", parse("s.sql", "-- name: values\nSELECT {column} FROM t LIMIT %(n)s\n", {}))
    assert statements.text("values", column="tag").text == 'SELECT "tag" FROM t LIMIT :n'


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        pytest.param("-- name: a\nSELECT {colour.blue}\n", "Colour does not have", id="unknown-enum-value"),
        pytest.param("-- name: a\nSELECT {shade.dark}\n", "enum prefix", id="unknown-enum"),
        pytest.param("-- name: a\nSELECT * FROM t WHERE id = :id\n", r"write %\(id\)s", id="colon-parameter"),
        pytest.param("-- name: a\nSELECT '50%'\n", "bare %", id="bare-percent"),
        pytest.param("-- name: a\nSELECT {b}\n-- name: b\nSELECT {a}\n", "includes itself", id="cycle"),
    ],
)
def test_a_file_that_could_fail_at_run_time_fails_at_load(source: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse("broken.sql", source, ENUMS)


def test_every_domain_loads_its_files() -> None:
    from notification.clients.queries import statements as clients
    from notification.delivery.queries import queries as delivery
    from notification.idempotency.store import statements as idempotency
    from notification.messages.state import state
    from notification.metrics import statements as metrics
    from notification.reports.queries import statements as reports
    from notification.stats.counters import statements as counters
    from notification.stats.queries import statements as stats
    from notification.stats.retention import statements as retention

    for loaded in (clients, delivery, idempotency, state, metrics, reports, counters, stats, retention):
        assert len(loaded) > 0, loaded.origin
    # The engine reads the state changes through its own queries, from the one file that holds them.
    assert delivery["record_answers"] == state["record_answers"]
