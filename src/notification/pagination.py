"""Parameters shared by the API's lists and items, and the page a list answers."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import msgspec
from advanced_alchemy.service import OffsetPagination
from litestar.params import Parameter
from litestar.types import Empty

from notification.db import BIGINT_MAX

T = TypeVar("T")

MAX_PAGE_SIZE = 1000


def bigint_parameter(description: str, *, minimum: int = 1, default: Any = Empty) -> Any:
    """A parameter bound to a bigint column's range, which the database could not even be asked about
    beyond. Litestar documents bounds as floats, and 2**63 - 1 is no float: the exact ones are set."""
    return Parameter(
        ge=minimum,
        le=BIGINT_MAX,
        default=default,
        description=description,
        schema_extra={"minimum": minimum, "maximum": BIGINT_MAX},
    )


Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, default=50, description="Page size")]
Offset = Annotated[int, bigint_parameter("Rows to skip", minimum=0, default=0)]


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, page: OffsetPagination[T]) -> Page[T]:
        """The API's page of what a service's ``to_schema`` made of a list and its count."""
        return cls(items=list(page.items), total=page.total, limit=page.limit, offset=page.offset)
