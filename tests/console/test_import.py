"""CSV import: all or nothing, every refusal names its line and column, and it is fast."""

from __future__ import annotations

import html
import re
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import API_TOKEN
from tests.console_client import Console

COLUMNS = ("phone", "timezone", "tag", "operator_code")
HEADER = ",".join(COLUMNS) + "\n"


def _problems(page: str) -> list[str]:
    assert "Nothing was imported." in page
    block = page.split('id="problems"', 1)[1].split("</div>", 1)[0]
    return [html.unescape(re.sub(r"\s+", " ", item)).strip() for item in re.findall(r"<li>(.*?)</li>", block, re.S)]


async def _clients(db: AsyncSession) -> list[tuple[str, str, str, str]]:
    rows = (await db.execute(text("SELECT phone, timezone, tag, operator_code FROM clients ORDER BY id"))).all()
    await db.commit()
    return [tuple(row) for row in rows]


async def test_a_file_is_imported_whole(console: Console, db: AsyncSession) -> None:
    content = (
        "\ufeffPhone,Timezone,Tag,Operator_Code\r\n"
        "79160000001,Europe/Moscow,vip,\r\n"
        "\r\n"
        '79030000002,Asia/Vladivostok,"new, spring",999\r\n'
    ).encode()
    response = await console.upload("/admin/clients/import", content)
    assert response.status_code == 200
    assert re.search(r"Imported 2 clients from clients.csv in \d+\.\d s\.", response.text)
    assert "2 clients match." in response.text
    assert await _clients(db) == [
        ("79160000001", "Europe/Moscow", "vip", "916"),
        ("79030000002", "Asia/Vladivostok", "new, spring", "999"),
    ]


async def test_columns_beyond_the_known_ones_become_attributes(console: Console, db: AsyncSession) -> None:
    content = (
        "phone,timezone,Name,city,tag\n79160000001,UTC,Анна,Kazan,vip\n79160000002,UTC,,Moscow,\n79160000003,UTC,,,\n"
    ).encode()
    response = await console.upload("/admin/clients/import", content)
    assert response.status_code == 200, response.text
    rows = (await db.execute(text("SELECT phone, tag, attributes FROM clients ORDER BY id"))).all()
    await db.commit()
    # The header's own spelling names the attribute; an empty cell is an attribute the client has not.
    assert [tuple(row) for row in rows] == [
        ("79160000001", "vip", {"Name": "Анна", "city": "Kazan"}),
        ("79160000002", "", {"city": "Moscow"}),
        ("79160000003", "", {}),
    ]


BAD_FILES: list[tuple[bytes, list[str]]] = [
    (b"", ["The file is empty: it needs a header line and one client per line"]),
    (HEADER.encode(), ["The file has a header but no clients"]),
    (
        b"phone,2nd name,timezone\n79160000001,x,UTC\n",
        [
            "Line 1, column 2nd name: Column '2nd name' is not a usable attribute name:"
            " letters, digits and _, not starting with a digit"
        ],
    ),
    (
        b"phone,tag\n79160000001,vip\n",
        ["Line 1, column timezone: Column 'timezone' is missing: the columns are " + ", ".join(COLUMNS)],
    ),
    (b"phone,phone,timezone\n1,2,UTC\n", ["Line 1, column phone: Column 'phone' appears twice"]),
    (
        (HEADER + "79160000001,UTC,,\n89160000002,UTC,,\n").encode(),
        ["Line 3, column phone: Expected str matching regex '^7[0-9]{10}$'"],
    ),
    (
        (HEADER + "79160000001,UTC,,\n79160000002,Mars/Olympus,,\n").encode(),
        ["Line 3, column timezone: unknown IANA time zone 'Mars/Olympus'"],
    ),
    (
        (HEADER + "79160000001,UTC,,\n79160000002,UTC,,91\n").encode(),
        ["Line 3, column operator_code: Expected str of length >= 3"],
    ),
    (
        (HEADER + "79160000001,UTC,,\n79160000002,UTC,,\n79160000001,UTC,,\n").encode(),
        ["Line 4, column phone: phone 79160000001 repeats line 2"],
    ),
    (
        (HEADER + "79160000001,UTC,,\n79990000000,UTC,,\n").encode(),
        ["Line 3, column phone: a client with phone 79990000000 already exists"],
    ),
    ((HEADER + "79160000001,UTC\n").encode(), ["Line 2: 2 values where the header names 4"]),
    (
        (HEADER + "79160000001,Europe/Z\xfcrich,,\n").encode("latin-1"),
        ["Line 2: The file is not UTF-8 text: save it as UTF-8"],
    ),
]


async def test_a_bad_file_is_refused_by_line_and_column_and_nothing_is_imported(
    console: Console, db: AsyncSession
) -> None:
    existing = await console.client.post(
        "/api/v1/clients",
        json={"phone": "79990000000", "timezone": "UTC"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert existing.status_code == 201
    for content, problems in BAD_FILES:
        response = await console.upload("/admin/clients/import", content)
        assert response.status_code == 400, content[:80]
        assert _problems(response.text) == problems
    assert await _clients(db) == [("79990000000", "UTC", "", "999")]


async def test_more_than_100000_clients_are_refused(console: Console, db: AsyncSession) -> None:
    lines = "".join(f"{79_000_000_000 + i},UTC,,\n" for i in range(100_001))
    response = await console.upload("/admin/clients/import", (HEADER + lines).encode())
    assert response.status_code == 400
    assert _problems(response.text) == ["Line 100,002: More than 100,000 clients: import the file in parts"]
    assert await _clients(db) == []


async def test_a_file_over_the_size_limit_is_refused(console: Console, db: AsyncSession) -> None:
    response = await console.upload("/admin/clients/import", HEADER.encode() + b"7" * (24 * 2**20 + 1))
    assert response.status_code == 413
    assert "The file is larger than the 24 MB accepted." in response.text
    assert await _clients(db) == []


async def test_no_file_is_a_clear_error(console: Console) -> None:
    response = await console.post("/admin/clients/import", {})
    assert response.status_code == 400
    assert _problems(response.text) == ["Choose a CSV file to import."]


async def test_an_upload_without_the_csrf_token_is_refused(console: Console, db: AsyncSession) -> None:
    console.csrf = "forged"
    response = await console.upload("/admin/clients/import", (HEADER + "79160000001,UTC,,\n").encode())
    assert response.status_code == 403
    assert await _clients(db) == []


async def test_100000_clients_import_in_under_15_seconds(console: Console, db: AsyncSession) -> None:
    lines = "".join(f"{79_100_000_000 + i},Europe/Moscow,tag{i % 7},\n" for i in range(100_000))
    started = time.perf_counter()
    response = await console.upload("/admin/clients/import", (HEADER + lines).encode())
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert "Imported 100,000 clients" in response.text
    assert (await db.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 100_000
    assert elapsed < 15, f"the import took {elapsed:.1f} s"
