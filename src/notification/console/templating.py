"""The console's Jinja environment: Litestar's JinjaTemplateEngine over the package's templates,
with the few filters the pages share."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from litestar import Request
from litestar.plugins.flash import get_flashes
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from notification.console.identity import DEFAULT_TIMEZONE, current_identity, operator_timezone

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Where `notification dev` keeps the mail it receives (set by the console plugin from the settings).
DEV_MAILBOX_STATE = "console_dev_mailbox"


def _zone_of(context: Mapping[str, Any]) -> ZoneInfo:
    request = context.get("request")
    if request is None or "session" not in request.scope:
        return ZoneInfo(DEFAULT_TIMEZONE)
    return ZoneInfo(operator_timezone(request))


@pass_context
def local_time(context: Mapping[str, Any], value: dt.datetime | None, style: str = "minutes") -> str:
    """A moment in the operator's zone; ``style`` is ``minutes``, ``seconds`` or ``clock`` (time only)."""
    if value is None:
        return "—"
    local = value.astimezone(_zone_of(context))
    formats = {"minutes": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "clock": "%H:%M:%S"}
    return local.strftime(formats[style])


def number(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def percent(part: int, whole: int) -> str:
    if whole <= 0:
        return "0 %"
    share = 100 * part / whole
    # 99.96 % is not "100 %": a person reads 100 as done.
    return f"{share:.0f} %" if share in {0, 100} or 1 <= share <= 99 else f"{share:.1f} %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def audit_value(value: Any) -> str:
    """A field's value in the audit log, as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value or "(empty)"
    return json.dumps(value, ensure_ascii=False)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        local_time=local_time, number=number, percent=percent, duration=duration, audit_value=audit_value
    )
    engine = JinjaTemplateEngine.from_environment(environment)
    engine.register_template_callable("get_flashes", get_flashes)
    return TemplateConfig(instance=engine)


def refreshing(request: HTMXRequest, fragment_id: str) -> bool:
    """Whether htmx is refreshing this fragment of the page, which is then all it needs."""
    return bool(request.htmx) and request.htmx.target == fragment_id


def dev_mailbox_shown(request: Request[Any, Any, Any]) -> bool:
    """Whether the development mailbox exists (``notification dev`` made it): only then is there a
    page of the reports it received."""
    mailbox = request.app.state.get(DEV_MAILBOX_STATE)
    return isinstance(mailbox, Path) and mailbox.is_dir()


def page(request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any) -> Template:
    """A console page: every template knows who is signed in and in which zone times are shown."""
    # A session cleared by this request (a failed sign-in) is no session to read flashes from.
    has_session = isinstance(request.scope.get("session"), dict)
    identity = current_identity(request) if has_session else None
    return Template(
        template_name=f"console/{template}",
        context={
            "has_session": has_session,
            "identity": identity,
            "dev_reports": identity is not None and identity.can_change and dev_mailbox_shown(request),
            "zone": operator_timezone(request) if has_session else DEFAULT_TIMEZONE,
            **context,
        },
        status_code=status_code,
    )
