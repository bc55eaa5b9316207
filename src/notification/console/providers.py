"""``/admin/providers``: the providers and their routes. Everyone signed in sees them; only an
admin adds, changes or disables a provider, or edits the routes. A secret is typed into a
password field and never shown again: the page says whether one is set."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.console.forms import decode_as, field_errors
from notification.console.identity import require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput
from notification.provider.schemas import ProviderWrite, RouteRuleSchema
from notification.provider.services import ProviderService, to_read

logger = structlog.get_logger(__name__)

FIELDS = ("name", "kind", "settings", "secret", "callback_secret", "rate_limit", "concurrency", "window", "binds")


def provide_console_provider_service(db_session: AsyncSession, audit: AuditTrail, state: State) -> ProviderService:
    settings: Settings = state.settings
    return ProviderService(db_session, audit, settings)


def _provider_json(values: dict[str, str]) -> dict[str, Any]:
    """The form as the API's body; a field left empty is the API's default (a secret left empty: kept)."""
    body: dict[str, Any] = {"name": values["name"], "kind": values["kind"], "enabled": values.get("enabled") == "on"}
    try:
        body["settings"] = msgspec.json.decode(values["settings"] or "{}")
    except msgspec.DecodeError:
        raise InvalidInput.of("settings", 'must be a JSON object, such as {"url": "https://..."}') from None
    if values.get("secret"):
        body["secret"] = values["secret"]
    if values.get("callback_secret"):
        body["callback_secret"] = values["callback_secret"]
    for name, kind in (("rate_limit", float), ("concurrency", int), ("window", int), ("binds", int)):
        if values.get(name):
            try:
                body[name] = kind(values[name])
            except ValueError:
                raise InvalidInput.of(name, "must be a number") from None
    return body


class ProviderConsoleController(Controller):
    path = "/providers"
    guards = [require_sign_in]
    dependencies = {"providers": Provide(provide_console_provider_service, sync_to_thread=False)}

    async def _page(
        self,
        request: Request[Any, Any, Any],
        providers: ProviderService,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        editing: int | None = None,
        routes_text: str | None = None,
        status_code: int = 200,
    ) -> Template:
        rules = await providers.routes()
        return page(
            request,
            "providers.html",
            status_code=status_code,
            providers=await providers.list_providers(),
            rules=rules,
            routes_text=routes_text
            if routes_text is not None
            else msgspec.json.format(msgspec.json.encode(rules), indent=2).decode(),
            values=values or {"kind": "http", "settings": "{}", "enabled": "on"},
            errors=errors or {},
            editing=editing,
        )

    @get("/")
    async def providers_page(self, request: Request[Any, Any, Any], providers: ProviderService) -> Template:
        return await self._page(request, providers)

    @get("/{provider_id:int}/edit", guards=[require_admin])
    async def edit_form(
        self, request: Request[Any, Any, Any], providers: ProviderService, provider_id: int
    ) -> Template:
        read = to_read(await providers.get(provider_id))
        values = {
            "name": read.name,
            "kind": read.kind,
            "settings": msgspec.json.encode(read.settings).decode(),
            "rate_limit": "" if read.rate_limit is None else str(read.rate_limit),
            "concurrency": str(read.concurrency),
            "window": str(read.window),
            "binds": str(read.binds),
            "enabled": "on" if read.enabled else "",
        }
        return await self._page(request, providers, values, editing=provider_id)

    async def _save(
        self, request: Request[Any, Any, Any], providers: ProviderService, provider_id: int | None
    ) -> Template | Redirect:
        form = await request.form()
        values = {name: str(form.get(name, "")) for name in (*FIELDS, "enabled")}
        try:
            data = decode_as(_provider_json(values), ProviderWrite)
            if provider_id is None:
                read = await providers.create(data)
            else:
                await providers.get(provider_id)
                read = await providers.replace(provider_id, data)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            values["secret"] = values["callback_secret"] = ""  # never sent back to the browser
            code = HTTP_409_CONFLICT if isinstance(exc, Conflict) else HTTP_400_BAD_REQUEST
            return await self._page(request, providers, values, field_errors(exc), provider_id, status_code=code)
        logger.info("provider saved", via="console", provider=read.name, kind=read.kind, enabled=read.enabled)
        flash(request, f"Provider {read.name} saved.", "success")
        return Redirect("/admin/providers", status_code=HTTP_303_SEE_OTHER)

    @post("/", guards=[require_admin])
    async def create(self, request: Request[Any, Any, Any], providers: ProviderService) -> Template | Redirect:
        return await self._save(request, providers, None)

    @post("/{provider_id:int}", guards=[require_admin])
    async def update(
        self, request: Request[Any, Any, Any], providers: ProviderService, provider_id: int
    ) -> Template | Redirect:
        return await self._save(request, providers, provider_id)

    @post("/routes", guards=[require_admin])
    async def replace_routes(self, request: Request[Any, Any, Any], providers: ProviderService) -> Template | Redirect:
        form = await request.form()
        routes_text = str(form.get("routes", "[]"))
        try:
            rules = decode_as(msgspec.json.decode(routes_text or "[]"), list[RouteRuleSchema])
            await providers.replace_routes(rules)
        except msgspec.DecodeError:
            errors = {"routes": "must be a JSON list of rules"}
            return await self._page(request, providers, errors=errors, routes_text=routes_text, status_code=400)
        except (msgspec.ValidationError, InvalidInput) as exc:
            errors = {"routes": "; ".join(f"{k}: {v}" if k else v for k, v in field_errors(exc).items())}
            return await self._page(request, providers, errors=errors, routes_text=routes_text, status_code=400)
        flash(request, "Routes saved.", "success")
        return Redirect("/admin/providers", status_code=HTTP_303_SEE_OTHER)
