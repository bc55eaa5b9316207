"""The API's rules for what a query may carry, held by every console page: PostgreSQL's text cannot
hold a NUL character, and an id past the bigint range names no row (and cannot even be sent). Such
a request is a 400 page, before any handler reads it."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers.base import BaseRouteHandler

from notification.db import BIGINT_MAX

ID_PARAMETERS = frozenset({"after", "before"})


def _id_in_range(value: str) -> bool:
    # str.isdigit() holds for "²", which int() does not read: ASCII digits only.
    return value.isascii() and value.isdigit() and 1 <= int(value) <= BIGINT_MAX


def refuse_unstorable_query(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    for name, value in connection.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise ValidationException(detail=f"Query parameter {name!r} contains a NUL character")
        if name in ID_PARAMETERS and value and not _id_in_range(value):
            raise ValidationException(detail=f"Query parameter {name!r} must be a whole number from 1 to {BIGINT_MAX}")


__all__ = ("refuse_unstorable_query",)
