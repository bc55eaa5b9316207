from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import Parameter

T = TypeVar("T")

MAX_PAGE_SIZE = 1000

Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, default=50, description="Page size")]
Offset = Annotated[int, Parameter(ge=0, default=0, description="Rows to skip")]


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
