"""Errors on console routes are pages, not problem documents: a sign-in redirect, or a page that
says what went wrong in words and where to go from there."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from advanced_alchemy.exceptions import NotFoundError
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from notification.console.forms import MAX_UPLOAD_BYTES
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput, NotFound
from notification.outage import RETRY_AFTER_S, database_unreachable

SIGN_IN_PATH = "/admin/sign-in"

logger = structlog.get_logger(__name__)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def _to_sign_in(request: Request[Any, Any, Any], _: NotAuthorizedException) -> Response[Any]:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{SIGN_IN_PATH}?next={quote(here, safe='')}"
    if is_htmx(request):
        # A fragment being refreshed cannot show the sign-in page in its place: the whole page goes.
        return ClientRedirect(target)
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


def _error_page(request: Request[Any, Any, Any], status: int, title: str, message: str) -> Response[Any]:
    return page(request, "error.html", status_code=status, title=title, message=message)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    if exc.detail == "CSRF token verification failed":
        message = (
            "The form was not accepted: it expired or did not come from this console. "
            "Go back, reload the page and send it again."
        )
    else:
        message = exc.detail
    logger.warning("console request refused", path=request.url.path, reason=exc.detail)
    return _error_page(request, HTTP_403_FORBIDDEN, "Not allowed", message)


def _not_found(request: Request[Any, Any, Any], exc: NotFound | NotFoundError | NotFoundException) -> Response[Any]:
    if isinstance(exc, NotFound):
        message = f"There is no {exc.what} {exc.ident}: it may have been deleted."
    else:
        message = "There is no such page."
    return _error_page(request, HTTP_404_NOT_FOUND, "Not found", message)


def _invalid(request: Request[Any, Any, Any], exc: ValidationException | InvalidInput) -> Response[Any]:
    detail = str(exc) if isinstance(exc, InvalidInput) else exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        fields = [f"{item.get('key')}: {item.get('message')}" for item in exc.extra if isinstance(item, dict)]
        detail = "; ".join(fields) or detail
    return _error_page(request, HTTP_400_BAD_REQUEST, "Invalid request", detail)


def _conflict(request: Request[Any, Any, Any], exc: Conflict) -> Response[Any]:
    return _error_page(request, HTTP_409_CONFLICT, "Conflict", exc.message)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
        limit = MAX_UPLOAD_BYTES // 2**20
        return _error_page(request, exc.status_code, "Too large", f"The file is larger than the {limit} MB accepted.")
    return _error_page(request, exc.status_code, exc.detail, exc.detail)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unreachable(exc):
        logger.warning("database unreachable", path=request.url.path, method=request.method, error=type(exc).__name__)
        page = _error_page(
            request, HTTP_503_SERVICE_UNAVAILABLE, "Unavailable", "The database cannot be reached: try again shortly."
        )
        page.headers["Retry-After"] = str(RETRY_AFTER_S)
        return page
    logger.exception("unhandled error", path=request.url.path, method=request.method)
    return _error_page(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "Something went wrong", "The server could not handle this request."
    )


# Every class the app's own handlers name is named again here: the closest layer's map is searched
# by the exception's class hierarchy, so an app-level entry for a subclass would win otherwise.
exception_handlers: ExceptionHandlersMap = {
    NotAuthorizedException: _to_sign_in,
    PermissionDeniedException: _forbidden,
    NotFound: _not_found,
    NotFoundError: _not_found,
    NotFoundException: _not_found,
    ValidationException: _invalid,
    InvalidInput: _invalid,
    Conflict: _conflict,
    HTTPException: _http,
    Exception: _unexpected,
}
