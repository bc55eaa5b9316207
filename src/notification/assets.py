"""Files the app serves itself under ``/static``: its own and the vendored third-party ones
(``static/vendor/VENDORED.md`` names each with its version and licence). Pages load nothing from
another host."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = "/static"


def static_url(relative_path: str) -> str:
    """The URL of a file under ``static/``, e.g. ``static_url("vendor/htmx/2.0.8/htmx.min.js")``."""
    return f"{STATIC_PATH}/{relative_path}"


def static_files_router() -> Router:
    return create_static_files_router(path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False)


__all__ = ("STATIC_DIR", "static_files_router", "static_url")
