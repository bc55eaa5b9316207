"""The console's client search stays on indexes: no query of it reads the clients table whole.

EXPLAIN over a directory large enough (60,000 clients, vacuumed and analysed as autovacuum leaves
a real one) that PostgreSQL's choice between a sequential scan and an index is a real choice."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from notification.clients.schemas import ClientSearch
from notification.clients.services import client_conditions, search_count_statement, search_order, search_statement
from notification.config import Settings

CLIENTS = 60_000

SEED = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n * 7)::text,
       '9' || lpad((n %% 100)::text, 2, '0'),
       CASE WHEN n %% 1000 = 0 THEN 'rare' ELSE (ARRAY['', 'vip', 'new', 'b2b'])[n %% 4 + 1] END,
       (ARRAY['Europe/Moscow', 'Europe/Berlin', 'Asia/Vladivostok', 'UTC', 'America/New_York'])[n %% 5 + 1]
FROM generate_series(1, %(count)s) AS n
"""

SEARCHES = {
    "everyone": ClientSearch(),
    "phone prefix, narrow": ClientSearch(phone_prefix="7900001"),
    "phone prefix, broad": ClientSearch(phone_prefix="790"),
    "phone, whole": ClientSearch(phone_prefix="79000000070"),
    "operator code": ClientSearch(operator_code="916"),
    "tag, common": ClientSearch(tag="vip"),
    "tag, rare": ClientSearch(tag="rare"),
    "time zone": ClientSearch(timezone="UTC"),
    "operator code and tag": ClientSearch(operator_code="916", tag="vip"),
    "operator code and tag, none": ClientSearch(operator_code="916", tag="b2b"),
    "everything": ClientSearch(phone_prefix="7900", operator_code="916", tag="vip", timezone="UTC"),
}


@pytest.fixture(scope="module")
def directory(pg_server_url: str, template_database_url: str) -> Any:
    """One directory for every plan of this module: seeding it is the slow part."""
    import uuid

    from sqlalchemy import make_url

    name = f"notification_plans_{uuid.uuid4().hex[:8]}"
    template = make_url(template_database_url).database
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY WAL_LOG')
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED, {"count": CLIENTS})
            conn.execute("VACUUM ANALYZE clients")
            yield conn
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sql(statement: Select[Any]) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def _plan(conn: psycopg.Connection[Any], sql: str, analyze: bool = False) -> list[dict[str, Any]]:
    row = conn.execute(f"EXPLAIN ({'ANALYZE, ' if analyze else ''}FORMAT JSON) {sql}").fetchone()
    assert row is not None
    return _nodes(row[0][0]["Plan"])


def _scans_of_clients(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["Node Type"] + " " + n.get("Index Name", "") for n in nodes if n.get("Relation Name") == "clients"]


def _middle_key(search: ClientSearch) -> str:
    """A cursor halfway through the directory, in the search's order."""
    middle = CLIENTS // 2
    column, _ = search_order(search)
    return str(79_000_000_000 + middle * 7) if column.key == "phone" else str(middle)


def _examined(nodes: list[dict[str, Any]]) -> int:
    """Rows of clients an executed plan read: those it kept and those its filters dropped."""
    return sum(
        int((n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)) * n.get("Actual Loops", 1))
        for n in nodes
        if n.get("Relation Name") == "clients"
    )


@pytest.mark.parametrize("name", list(SEARCHES))
@pytest.mark.parametrize("page", ["first", "after the middle", "before the middle"])
def test_a_page_of_the_search_reads_an_index_and_few_rows(
    directory: psycopg.Connection[Any], name: str, page: str
) -> None:
    search = SEARCHES[name]
    cursor = {
        "first": {},
        "after the middle": {"after": _middle_key(search)},
        "before the middle": {"before": _middle_key(search)},
    }[page]
    sql = _sql(search_statement(search, 51, **cursor))
    scans = _scans_of_clients(_plan(directory, sql))
    assert scans, "the plan does not read clients at all?"
    assert all("Seq Scan" not in scan for scan in scans), scans
    # The data is correlated as real data is (operator 916 has no vip client; phones, ids and
    # operator codes grow together): a plan that walks the primary key hoping to meet matches
    # early reads most of the table. Bounded: a page reads at most an operator code's clients.
    examined = _examined(_plan(directory, sql, analyze=True))
    assert examined <= CLIENTS // 100 + 51, (examined, scans)


@pytest.mark.parametrize("name", list(SEARCHES))
def test_counting_the_search_reads_an_index(directory: psycopg.Connection[Any], name: str) -> None:
    scans = _scans_of_clients(_plan(directory, _sql(search_count_statement(SEARCHES[name], 10_001))))
    assert all("Seq Scan" not in scan for scan in scans), scans


@pytest.mark.parametrize("column", ["operator_code", "tag", "timezone"])
def test_the_values_present_are_found_by_index_probes(directory: psycopg.Connection[Any], column: str) -> None:
    from notification.clients.services import _PRESENT_VALUES

    nodes = _plan(directory, _PRESENT_VALUES[column].text.replace(":limit", "500"))
    scans = _scans_of_clients(nodes)
    assert scans
    assert all("Seq Scan" not in scan for scan in scans), scans


def test_the_search_finds_what_it_says(directory: psycopg.Connection[Any], settings: Settings) -> None:
    """The range on the phone index is exactly the prefix: checked against LIKE on the same data."""
    for prefix in ["7900001", "790000007", "79000000070", "7"]:
        by_range = directory.execute(
            _sql(search_count_statement(ClientSearch(phone_prefix=prefix), 1_000_000))
        ).fetchone()
        by_like = directory.execute("SELECT count(*) FROM clients WHERE phone LIKE %s", (prefix + "%",)).fetchone()
        assert by_range == by_like, prefix
    assert client_conditions() == []
