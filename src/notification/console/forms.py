"""From form fields to the API's own structs, and from their validation errors back to fields.

A form is turned into the JSON the API would receive and decoded by msgspec into the same struct
(MailingCreate, ClientCreate...): the console has no validation rules of its own, only the
translation of an HTML form's strings (a local date and time, a checkbox list) into that JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from notification.clients.schemas import ATTRIBUTE_NAME_PATTERN, ClientCreate
from notification.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from _csv import Reader

T = TypeVar("T")

FieldErrors = dict[str, str]
"""Error message by field path (``text``, ``filter.tags``, ``send_window.start``)."""

_LOCATED = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_INDEX = re.compile(r"\[\d+\]")
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
_FIRST_INDEX = re.compile(r"^\[(\d+)\]\.?")
_ROW_OF_FILE = re.compile(r"\brow (\d+)\b")


def _split(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's message and where it points: ``("Expected `str`...", ".filter.tags[0]")``."""
    located = _LOCATED.match(str(exc))
    assert located is not None
    return located.group("message"), located.group("path") or ""


def _readable(message: str) -> str:
    return message.replace("`", "")


def _field_of(path: str, message: str) -> str:
    field = path.lstrip(".")
    if named := _NAMED_FIELD.search(message):
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    return field


def decode_as(raw: Any, kind: type[T]) -> T:
    """Decode as the API decodes a JSON body: the same struct, the same rules, the same messages."""
    return msgspec.json.decode(msgspec.json.encode(raw), type=kind)


def _form_field(field: str, message: str) -> tuple[str, str]:
    # An attribute is a line of one textarea: its error shows there, naming the attribute.
    if field.startswith("attributes."):
        return "attributes", f"{field.removeprefix('attributes.')}: {message}"
    return _INDEX.sub("", field), message


def field_errors(exc: msgspec.ValidationError | InvalidInput | Conflict) -> FieldErrors:
    """Errors by form field; list positions are dropped (``filter.tags[2]`` shows at ``filter.tags``)."""
    if isinstance(exc, InvalidInput):
        return dict(_form_field(field, message) for field, message in reversed(exc.errors))
    if isinstance(exc, Conflict):
        return {exc.field: exc.message}
    message, path = _split(exc)
    return {_INDEX.sub("", _field_of(path, message)): _readable(message)}


def local_datetime(value: str | None, zone: str) -> str | None:
    """A ``datetime-local`` field read in the operator's zone, as ISO 8601 with its offset. Text
    that is no such value is passed on as it is, for the struct to refuse with its own message."""
    if not value:
        return None
    try:
        naive = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if naive.tzinfo is not None:
        return naive.isoformat()
    return naive.replace(tzinfo=ZoneInfo(zone)).isoformat()


def local_input(value: dt.datetime, zone: str) -> str:
    """The value of a ``datetime-local`` field showing a moment in the operator's zone."""
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def mailing_json(form: Mapping[str, str], lists: Mapping[str, list[str]], zone: str) -> dict[str, Any]:
    """The mailing form as the JSON of ``POST /api/v1/mailings``."""
    body: dict[str, Any] = {
        "text": form.get("text", "").replace("\r\n", "\n"),
        # The form always sends the kind it shows (service preselected on a new one); a post
        # without it is taken as the form's default.
        "kind": form.get("kind") or "service",
        "start_at": local_datetime(form.get("start_at"), zone),
        "end_at": local_datetime(form.get("end_at"), zone),
        "filter": {
            "operator_codes": lists.get("operator_codes", []),
            "tags": lists.get("tags", []),
            "attributes": attributes_of(form.get("filter_attributes", ""), "filter.attributes"),
        },
        "send_window": None,
    }
    window_start, window_end = form.get("window_start", ""), form.get("window_end", "")
    if window_start or window_end:
        body["send_window"] = {"start": window_start, "end": window_end}
    return body


def attributes_text(attributes: Mapping[str, str]) -> str:
    """A client's attributes as the form's textarea shows them: one ``name=value`` a line."""
    return "\n".join(f"{name}={value}" for name, value in attributes.items())


def attributes_of(text: str, field: str = "attributes") -> dict[str, str]:
    """The textarea's ``name=value`` lines (blank ones skipped) as the API's attributes object; a
    line without ``=`` is refused, naming the field and the line."""
    attributes: dict[str, str] = {}
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise InvalidInput.of(field, f"line {number}: write name=value")
        attributes[name.strip()] = value.strip()
    return attributes


CONSENT_FIELDS = ("consent_given_at", "consent_source", "consent_revoked_at")


def client_json(form: Mapping[str, str], zone: str = "UTC") -> dict[str, Any]:
    """The client form as the JSON of ``POST /api/v1/clients``; an empty operator code means the
    default one, taken from the phone; consent instants are read in the operator's zone."""
    body: dict[str, Any] = {
        "phone": form.get("phone", "").strip(),
        "timezone": form.get("timezone", "").strip(),
        "tag": form.get("tag", "").strip(),
        "attributes": attributes_of(form.get("attributes", "")),
        "consent_given_at": local_datetime(form.get("consent_given_at", "").strip(), zone),
        "consent_source": form.get("consent_source", "").strip() or None,
        "consent_revoked_at": local_datetime(form.get("consent_revoked_at", "").strip(), zone),
    }
    if operator_code := form.get("operator_code", "").strip():
        body["operator_code"] = operator_code
    return body


# -- CSV import ----------------------------------------------------------------------------------

BASE_CSV_COLUMNS = ("phone", "timezone", "tag", "operator_code")
CSV_COLUMNS = (*BASE_CSV_COLUMNS, *CONSENT_FIELDS)
"""Any other column is an attribute. Consent instants are ISO 8601 with their offset; empty: none."""
MAX_CSV_ROWS = 100_000
# 100,000 lines of the longest clients (11 + 64 + 100 + 3 characters) fit, with room to spare.
MAX_UPLOAD_BYTES = 24 * 2**20
CSV_REQUIRED = frozenset({"phone", "timezone"})


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """What is wrong with an imported file, and where: its line (1 is the header) and column."""

    message: str
    line: int | None = None
    field: str | None = None


class CsvRejected(Exception):
    def __init__(self, problems: list[CsvProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ClientsFile:
    clients: list[ClientCreate]
    lines: list[int]
    """The line of the file each client came from."""

    def problems_of(self, exc: InvalidInput | Conflict) -> list[CsvProblem]:
        """The directory's refusal of rows (named ``[i].field``), told by line and column."""
        errors = exc.errors if isinstance(exc, InvalidInput) else [(exc.field, exc.message)]
        return [self._located(field, message) for field, message in errors]

    def _located(self, field: str, message: str) -> CsvProblem:
        # The directory counts rows from 0; a person reading the file counts its lines.
        message = _ROW_OF_FILE.sub(lambda m: f"line {self.lines[int(m.group(1))]}", _readable(message))
        index = _FIRST_INDEX.match(field)
        if index is None:
            return CsvProblem(message, field=field or None)
        return CsvProblem(message, self.lines[int(index.group(1))], field[index.end() :] or None)


def read_clients_csv(data: bytes, max_rows: int) -> ClientsFile:
    """Parse an upload of clients: a header naming the columns, then one client per line."""
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CsvRejected([CsvProblem("The file is not UTF-8 text: save it as UTF-8", line)]) from None
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        rows, lines = _rows(reader, max_rows)
    except csv.Error as exc:
        raise CsvRejected([CsvProblem(f"Not a readable CSV file: {exc}", reader.line_num)]) from None
    try:
        clients = decode_as(rows, list[ClientCreate])
    except msgspec.ValidationError as exc:
        message, path = _split(exc)
        index = _FIRST_INDEX.match(path.lstrip("."))
        assert index is not None
        field = _field_of(path.lstrip(".")[index.end() :], message)
        raise CsvRejected([CsvProblem(_readable(message), lines[int(index.group(1))], field or None)]) from None
    return ClientsFile(clients, lines)


def _rows(reader: Reader, max_rows: int) -> tuple[list[dict[str, Any]], list[int]]:
    header = next(reader, None)
    if header is None:
        raise CsvRejected([CsvProblem("The file is empty: it needs a header line and one client per line")])
    names = [name.strip().lower() for name in header]
    problems = _header_problems(names)
    if problems:
        raise CsvRejected(problems)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(rows) == max_rows:
            raise CsvRejected([CsvProblem(f"More than {max_rows:,} clients: import the file in parts", line)])
        if len(values) != len(names):
            raise CsvRejected([CsvProblem(f"{len(values)} values where the header names {len(names)}", line)])
        row: dict[str, Any] = {}
        attributes: dict[str, str] = {}
        for name, header_name, value in zip(names, header, values, strict=True):
            if name in CSV_COLUMNS:
                row[name] = value.strip()
            elif value.strip():
                # An empty cell is an attribute the client does not have.
                attributes[header_name.strip()] = value.strip()
        _drop_empty_optional(row)
        if attributes:
            row["attributes"] = attributes
        rows.append(row)
        lines.append(line)
    if not rows:
        raise CsvRejected([CsvProblem("The file has a header but no clients")])
    return rows, lines


def _drop_empty_optional(row: dict[str, Any]) -> None:
    """An empty operator code takes the phone's; an empty consent cell is no consent."""
    for optional in ("operator_code", *CONSENT_FIELDS):
        if row.get(optional) == "":
            del row[optional]


def _header_problems(names: list[str]) -> list[CsvProblem]:
    expected = ", ".join(BASE_CSV_COLUMNS)
    # Any other column is an attribute of each client (name, city...), under its header as written.
    problems = [
        CsvProblem(
            f"Column {name!r} is not a usable attribute name: letters, digits and _, not starting with a digit", 1, name
        )
        for name in names
        if name not in CSV_COLUMNS and not re.fullmatch(ATTRIBUTE_NAME_PATTERN.strip("^$"), name)
    ]
    problems += [CsvProblem(f"Column {name!r} appears twice", 1, name) for name in set(names) if names.count(name) > 1]
    problems += [
        CsvProblem(f"Column {name!r} is missing: the columns are {expected}", 1, name)
        for name in sorted(CSV_REQUIRED - set(names))
    ]
    return problems
