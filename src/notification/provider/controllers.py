"""``/providers`` and ``/routes``: the providers and the routes among them, managed while the
service runs; workers pick each change up within a few seconds. Every change is audited; a
secret is never part of an answer, a log line or an audit row."""

from __future__ import annotations

from typing import Annotated

import structlog
from litestar import Controller, delete, get, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Body
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.errors import problem_responses
from notification.pagination import bigint_parameter
from notification.provider.schemas import ProviderRead, ProviderWrite, RouteRuleSchema
from notification.provider.services import ProviderService, to_read

logger = structlog.get_logger(__name__)

ProviderId = Annotated[int, bigint_parameter("Provider id")]


def provide_provider_service(db_session: AsyncSession, audit: AuditTrail, state: State) -> ProviderService:
    settings: Settings = state.settings
    return ProviderService(db_session, audit, settings)


class ProviderController(Controller):
    path = "/providers"
    tags = ["providers"]
    dependencies = {"providers": Provide(provide_provider_service, sync_to_thread=False)}

    @post(
        "/",
        summary="Add a provider",
        description="400 names the field at fault; a `secret` needs `NOTIFICATION_SECRET_KEY` to be set.",
        responses=problem_responses(400, 401, 409),
    )
    async def create_provider(self, providers: ProviderService, data: ProviderWrite) -> ProviderRead:
        read = await providers.create(data)
        logger.info("provider added", provider=read.name, kind=read.kind, enabled=read.enabled)
        return read

    @get("/", summary="List the providers", responses=problem_responses(401))
    async def list_providers(self, providers: ProviderService) -> list[ProviderRead]:
        return await providers.list_providers()

    @get("/{provider_id:int}", summary="Get a provider", responses=problem_responses(400, 401, 404))
    async def get_provider(self, providers: ProviderService, provider_id: ProviderId) -> ProviderRead:
        return to_read(await providers.get(provider_id))

    @put(
        "/{provider_id:int}",
        summary="Replace a provider",
        description="`secret` left out keeps the stored one; an empty `secret` removes it.",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def replace_provider(
        self, providers: ProviderService, provider_id: ProviderId, data: ProviderWrite
    ) -> ProviderRead:
        read = await providers.replace(provider_id, data)
        logger.info("provider changed", provider=read.name, kind=read.kind, enabled=read.enabled)
        return read

    @delete(
        "/{provider_id:int}",
        summary="Remove a provider",
        description="409 while a route names it.",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def delete_provider(self, providers: ProviderService, provider_id: ProviderId) -> None:
        await providers.delete(provider_id)
        logger.info("provider removed", provider_id=provider_id)


class RouteController(Controller):
    path = "/routes"
    tags = ["providers"]
    dependencies = {"providers": Provide(provide_provider_service, sync_to_thread=False)}

    @get("/", summary="The routes, in the order they are tried", responses=problem_responses(401))
    async def get_routes(self, providers: ProviderService) -> list[RouteRuleSchema]:
        return await providers.routes()

    @put("/", summary="Replace the routes as a whole", responses=problem_responses(400, 401))
    async def replace_routes(
        self,
        providers: ProviderService,
        data: Annotated[
            list[RouteRuleSchema],
            Body(
                max_items=1000,
                description="The first rule that matches a message names its providers, tried in order;"
                " a message no rule matches goes to the first enabled provider. Refused with 400: a rule naming"
                " a provider that is not stored (no provider named ...), and a rule with both operator codes"
                " and phone prefixes (a rule matches operator codes or phone prefixes, not both).",
            ),
        ],
    ) -> list[RouteRuleSchema]:
        rules = await providers.replace_routes(data)
        logger.info("routes replaced", rules=len(rules))
        return rules
