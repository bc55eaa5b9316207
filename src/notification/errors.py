"""RFC 9457 problem details for every error the API returns, each naming the offending field."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from advanced_alchemy.exceptions import NotFoundError
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from litestar.types import ExceptionHandlersMap

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ProblemDetails(msgspec.Struct):
    """RFC 9457 body of every error; ``errors`` names each offending field."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


_DESCRIPTIONS = {
    400: "Invalid input; `errors` names each offending field",
    401: "Missing or wrong bearer token",
    404: "No such resource",
    409: "Conflicts with existing data; `errors` names the field",
    503: "Cannot be done now; `Retry-After` says when to try again",
}


def problem_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem-details answers a handler may give."""
    return {
        code: ResponseSpec(ProblemDetails, description=_DESCRIPTIONS[code], media_type=PROBLEM_MEDIA_TYPE)
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
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


# msgspec says where an error is as "$.a[2].b"; Litestar hands it over as "a.[2].b" or "data.a".
_PATH_NOISE = re.compile(r"^(data\b\.?|\$\.?|\.)|\.(?=\[)")


def _field_path(key: str) -> str:
    return _PATH_NOISE.sub("", key) or "body"


# msgspec places these errors on the object; the field to name is the one inside the message.
_FIELD_IN_MESSAGE = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def _located_in_cause(exc: ValidationException) -> str | None:
    """msgspec's own message says where in a list body the error is; Litestar's summary drops that."""
    cause = exc.__cause__
    if not isinstance(cause, msgspec.ValidationError):
        return None
    located = re.search(r" - at `\$\.data([^`]*)`", str(cause))
    return _field_path(located.group(1)) if located and located.group(1) else None


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[dict[str, str]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        field = _field_path(str(item.get("key", "body")))
        if field == "body" and len(extra) == 1:
            field = _located_in_cause(exc) or field
        if named := _FIELD_IN_MESSAGE.search(message):
            field = named.group(1) if field == "body" else f"{field}.{named.group(1)}"
        if item.get("source") == "header":
            # Litestar names the handler's parameter; the caller knows the header it sent.
            field = field.replace("_", "-").title()
        entry = {"field": field, "message": message}
        if source := item.get("source"):
            entry["source"] = str(source)
        errors.append(entry)
    if not errors:
        errors.append({"field": "body", "message": exc.detail})
    return errors


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = _validation_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(HTTP_400_BAD_REQUEST, "Invalid request", detail, errors)


def _on_invalid_input(request: Request[Any, Any, Any], exc: InvalidInput) -> Response[dict[str, Any]]:
    errors = [{"field": field, "message": message} for field, message in exc.errors]
    return problem(HTTP_400_BAD_REQUEST, "Invalid request", str(exc), errors)


def _on_conflict(request: Request[Any, Any, Any], exc: Conflict) -> Response[dict[str, Any]]:
    return problem(HTTP_409_CONFLICT, "Conflict", str(exc), [{"field": exc.field, "message": exc.message}])


def _on_not_found(request: Request[Any, Any, Any], exc: NotFound | NotFoundError) -> Response[dict[str, Any]]:
    detail = str(exc) if isinstance(exc, NotFound) else "No such resource"
    return problem(HTTP_404_NOT_FOUND, "Not found", detail)


def _on_unauthorized(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[dict[str, Any]]:
    # The detail is fixed: the token the caller sent is never echoed back.
    return problem(HTTP_401_UNAUTHORIZED, "Unauthorized", exc.detail, headers=exc.headers)


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    return Response(
        {"type": "about:blank", "title": exc.detail, "status": exc.status_code, "detail": exc.detail},
        status_code=exc.status_code,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=exc.headers,
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # The body says nothing about the failure: it could carry connection strings or data.
    logger.exception("unhandled error", path=request.url.path, method=request.method)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", "The server could not handle the request")


exception_handlers: ExceptionHandlersMap = {
    ValidationException: _on_validation,
    InvalidInput: _on_invalid_input,
    Conflict: _on_conflict,
    NotFound: _on_not_found,
    NotFoundError: _on_not_found,
    NotAuthorizedException: _on_unauthorized,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}

__all__ = ("Conflict", "InvalidInput", "NotFound", "exception_handlers", "problem")
