"""``Idempotency-Key`` on creates: the key is taken in the transaction of the create and holds its
answer, so the same key and body within 24 hours get that answer again without a second create,
and a concurrent twin waits for the first to commit (the primary key's insert lock) before reading
it. Only answers that committed are remembered: a refused request leaves no key behind."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Response
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.errors import Conflict
from notification.idempotency.models import KEY_MAX_LENGTH
from notification.lib.sql import load

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HOURS = 24

IdempotencyKeyHeader = Annotated[
    str | None,
    Parameter(
        header=HEADER,
        min_length=1,
        max_length=KEY_MAX_LENGTH,
        required=False,
        description=(
            f"Any unique string (a UUID): the same key with the same body within {KEPT_HOURS} h answers "
            "the first response again and creates nothing; with another body it is a 409"
        ),
    ),
]

T = TypeVar("T")

statements = load(__package__, "queries.sql")
_TAKE = statements.text("take")
_READ = statements.text("read")
_ANSWER = statements.text("answer")
FORGET_EXPIRED = statements["forget_expired"]
"""For the sweep's psycopg connection."""


def digest(body: Any) -> bytes:
    """Of the decoded body, so that spacing or key order in the JSON make no difference."""
    return hashlib.sha256(msgspec.json.encode(body)).digest()


@dataclass(frozen=True, slots=True)
class IdempotentCreate:
    """One create under a key (or without one: then every method is a no-op)."""

    session: AsyncSession | async_scoped_session[AsyncSession]
    route: str
    key: str | None

    async def previous_answer(self, body: Any, answer_type: type[T]) -> Response[T] | None:
        """Takes the key, or answers what its first use answered; a different body is a conflict."""
        if self.key is None:
            return None
        params = {"route": self.route, "key": self.key, "digest": digest(body), "kept_hours": KEPT_HOURS}
        if (await self.session.execute(_TAKE, params)).first() is not None:
            return None
        row = (await self.session.execute(_READ, params)).one()
        if row.request_digest != params["digest"]:
            raise Conflict(HEADER, f"this key was used within {KEPT_HOURS} h with a different request body")
        content = msgspec.json.decode(row.response, type=answer_type)
        return Response(content, status_code=row.status_code, headers={REPLAYED_HEADER: "true"})

    async def remember_created(self, answer: Any) -> None:
        """The answer of the create, kept with the key: to be committed with what it created."""
        await self.remember(HTTP_201_CREATED, answer)

    async def remember(self, status_code: int, answer: Any) -> None:
        if self.key is None:
            return
        params = {"route": self.route, "key": self.key, "status_code": status_code}
        await self.session.execute(_ANSWER, params | {"response": msgspec.json.encode(answer).decode()})
