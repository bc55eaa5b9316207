"""RFC 9457 problem details for every error the API returns, each naming the offending field.

Litestar's problem-details plugin writes the envelope; this module decides what goes in it, and
documents it once (``ProblemDetails``) for every operation that may answer it."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Annotated, Any

import msgspec
import structlog
from advanced_alchemy.exceptions import NotFoundError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from notification.outage import RETRY_AFTER_S, database_unreachable

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE = "about:blank"


class FieldProblem(msgspec.Struct, forbid_unknown_fields=True):
    field: Annotated[
        str,
        msgspec.Meta(
            description="Where the problem is: a query or path parameter's name, or a path into the body"
            " (`phone`, `[3].timezone` for the fourth row of a list, `filter.operator_codes[0]`)",
            examples=["[3].timezone"],
        ),
    ]
    message: Annotated[str, msgspec.Meta(examples=["unknown IANA time zone 'Europe/Atlantis'"])]


class ProblemDetails(msgspec.Struct, forbid_unknown_fields=True):
    """RFC 9457 body of every error; `errors` names each offending field when the input is at fault."""

    type: Annotated[str, msgspec.Meta(examples=[PROBLEM_TYPE])]
    title: Annotated[str, msgspec.Meta(description="The HTTP status phrase", examples=["Bad Request"])]
    status: Annotated[int, msgspec.Meta(examples=[400])]
    detail: Annotated[str, msgspec.Meta(examples=["[3].timezone: unknown IANA time zone 'Europe/Atlantis'"])]
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


_DESCRIPTIONS = {
    400: "Invalid input; `errors` names each offending field",
    401: "Missing or wrong bearer token",
    404: "No such resource",
    409: "Conflicts with existing data; `errors` names the field",
    503: "Cannot be done now; `Retry-After` says when to try again",
}
_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {
        "detail": "phone: Expected `str` matching regex '^7[0-9]{10}$'",
        "errors": [{"field": "phone", "message": "Expected `str` matching regex '^7[0-9]{10}$'"}],
    },
    401: {"detail": "A valid bearer token is required"},
    404: {"detail": "mailing 42 does not exist"},
    409: {
        "detail": "phone: a client with phone 79161234567 already exists",
        "errors": [{"field": "phone", "message": "a client with phone 79161234567 already exists"}],
    },
    503: {"detail": "The provider's rate budget has no room now; try again later"},
}


def problem_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem-details answers a handler may give."""
    return {
        code: ResponseSpec(
            ProblemDetails,
            description=_DESCRIPTIONS[code],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
            examples=[
                Example(
                    summary=_DESCRIPTIONS[code],
                    value={"type": PROBLEM_TYPE, "title": HTTPStatus(code).phrase, "status": code, **_EXAMPLES[code]},
                )
            ],
        )
        for code in status_codes
    }


logger = structlog.get_logger(__name__)


class InvalidInput(Exception):
    """Input that parses but breaks a rule of the domain; each field is a path such as ``[3].timezone``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors

    @classmethod
    def of(cls, field: str, message: str) -> InvalidInput:
        return cls([(field, message)])


class Conflict(Exception):
    """The request collides with existing data, e.g. a phone number already in the directory."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(Exception):
    def __init__(self, what: str, ident: int) -> None:
        super().__init__(f"{what} {ident} does not exist")
        self.what = what
        self.ident = ident


def problem(
    status: int,
    detail: str,
    errors: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemDetailsException:
    extra = {"errors": [{"field": field, "message": message} for field, message in errors]} if errors else None
    return ProblemDetailsException(
        type_=PROBLEM_TYPE,
        title=HTTPStatus(status).phrase,
        status_code=status,
        detail=detail,
        extra=extra,
        headers=headers,
    )


def _field_problems(errors: list[tuple[str, str]]) -> str:
    return "; ".join(f"{field}: {message}" for field, message in errors)


# msgspec says where an error is as "$.a[2].b"; Litestar hands it over as "a.[2].b" or "data.a".
_PATH_NOISE = re.compile(r"^(data\b\.?|\$\.?|\.)|\.(?=\[)")


def _field_path(key: str) -> str:
    return _PATH_NOISE.sub("", key) or "body"


_FIELD_IN_MESSAGE = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def _named_field(field: str, message: str) -> str:
    """msgspec places an unknown or missing field's error on its object; the field to name is the
    one inside the message."""
    if named := _FIELD_IN_MESSAGE.search(message):
        return named.group(1) if field == "body" else f"{field}.{named.group(1)}"
    return field


def _located_in_cause(exc: ValidationException) -> str | None:
    """msgspec's own message says where in a list body the error is; Litestar's summary drops that."""
    cause = exc.__cause__
    if not isinstance(cause, msgspec.ValidationError):
        return None
    located = re.search(r" - at `\$\.data([^`]*)`", str(cause))
    return _field_path(located.group(1)) if located and located.group(1) else None


def _validation_errors(exc: ValidationException) -> list[tuple[str, str]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[tuple[str, str]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        field = _field_path(str(item.get("key", "body")))
        if field == "body" and len(extra) == 1:
            field = _located_in_cause(exc) or field
        field = _named_field(field, message)
        if item.get("source") == "header":
            # Litestar names the handler's parameter; the caller knows the header it sent.
            field = field.replace("_", "-").title()
        errors.append((field, message))
    return errors or [("body", exc.detail)]


def _on_validation(exc: ValidationException) -> ProblemDetailsException:
    errors = _validation_errors(exc)
    return problem(HTTP_400_BAD_REQUEST, _field_problems(errors), errors)


def _on_invalid_input(exc: InvalidInput) -> ProblemDetailsException:
    return problem(HTTP_400_BAD_REQUEST, _field_problems(exc.errors), exc.errors)


def _on_conflict(exc: Conflict) -> ProblemDetailsException:
    return problem(HTTP_409_CONFLICT, str(exc), [(exc.field, exc.message)])


def _on_not_found(exc: NotFound | NotFoundError) -> ProblemDetailsException:
    return problem(HTTP_404_NOT_FOUND, str(exc) if isinstance(exc, NotFound) else "No such resource")


def _on_http(exc: HTTPException) -> ProblemDetailsException:
    # A 401's detail is fixed by the guard: the token the caller sent is never echoed back.
    return problem(exc.status_code, exc.detail, headers=exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unreachable(exc):
        logger.warning("database unreachable", path=request.url.path, method=request.method, error=type(exc).__name__)
        unavailable = problem(
            HTTP_503_SERVICE_UNAVAILABLE,
            "The database cannot be reached: try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        return unavailable.to_response(request)
    # The body says nothing about the failure: it could carry connection strings or data.
    logger.exception("unhandled error", path=request.url.path, method=request.method)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "The server could not handle the request").to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                ValidationException: _on_validation,
                InvalidInput: _on_invalid_input,
                Conflict: _on_conflict,
                NotFound: _on_not_found,
                NotFoundError: _on_not_found,
                HTTPException: _on_http,
            }
        )
    )


# Whatever no problem mapping covers is a fault of ours: logged, and a 500 problem that says nothing more.
exception_handlers: ExceptionHandlersMap = {Exception: _on_unexpected}


def invalid_body(exc: msgspec.ValidationError) -> InvalidInput:
    """msgspec's refusal of a strictly decoded body, naming its field as the API names fields."""
    message, _, where = str(exc).partition(" - at `")
    field = _field_path(where.rstrip("`")) if where else "body"
    return InvalidInput.of(_named_field(field, message), message)


class ApiRequest(Request[Any, Any, Any]):
    """A request whose JSON body must have the documented JSON types (Litestar converts bodies the lax
    way query strings need, so a number would pass for a date-time), and whose body nested deeper than
    the decoder goes is bad input rather than a fault."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise InvalidInput.of("body", "JSON nested too deeply") from None
        if (data := self.route_handler.parsed_fn_signature.parameters.get("data")) is not None:
            try:
                msgspec.json.decode(await self.body(), type=data.annotation, strict=True)
            except msgspec.ValidationError as exc:
                raise invalid_body(exc) from None
        return value


__all__ = (
    "ApiRequest",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "ProblemDetails",
    "exception_handlers",
    "invalid_body",
    "problem_details_plugin",
    "problem_responses",
)
