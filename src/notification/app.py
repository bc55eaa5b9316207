"""The application factory: explicit wiring of every domain's controllers and the shared plugins."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.htmx import HTMXPlugin

from notification.assets import static_files_router
from notification.audiences.controllers import AudienceController, FacetController, OperatorCodeController
from notification.audit.controllers import AuditController
from notification.audit.deps import provide_api_audit_trail
from notification.auth import SECURITY, openapi_components, require_token
from notification.cli import NotificationCLIPlugin
from notification.clients.controllers import ClientController
from notification.config import Settings, get_settings
from notification.console.plugin import ConsolePlugin
from notification.db import sqlalchemy_config
from notification.errors import ApiRequest, exception_handlers, problem_details_plugin
from notification.health import HealthController
from notification.inbound.controllers import InboundCallbackController, InboundController
from notification.jobs import job_queue_lifespan
from notification.logging import configure_logging
from notification.mailings.controllers import MailingController
from notification.messages.controllers import MessageController
from notification.metrics import MetricsController, prometheus_config
from notification.observability import RequestContext, bind_path_ids
from notification.openapi import StrictStructSchemaPlugin, openapi_config
from notification.preview.controllers import PreviewController
from notification.provider.controllers import ProviderController, RouteController
from notification.receipts.controllers import ReceiptCallbackController
from notification.schedules.controllers import ScheduleController
from notification.security.headers import security_headers
from notification.security.throttle import STATE_KEY as THROTTLE_STATE_KEY
from notification.security.throttle import SignInThrottle
from notification.stats.controllers import StatsController
from notification.suppressions.controllers import SuppressionController
from notification.test_sends.controllers import TestSendController
from notification.webhooks.controllers import WebhookController

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    api = Router(
        API_PREFIX,
        route_handlers=[
            ClientController,
            MailingController,
            StatsController,
            MessageController,
            AuditController,
            PreviewController,
            TestSendController,
            AudienceController,
            FacetController,
            OperatorCodeController,
            ScheduleController,
            ProviderController,
            RouteController,
            WebhookController,
            SuppressionController,
            InboundController,
        ],
        guards=[require_token(settings.api_tokens)],
        # Who makes a request's changes, for the audit rows written with them.
        dependencies={"audit": Provide(provide_api_audit_trail, sync_to_thread=False)},
        security=SECURITY,
        # The API's strict body decoding; the console's pages keep HTMX's request class.
        request_class=ApiRequest,
    )
    # Signed by the provider, not by an API token: a router of its own, without the token guard.
    callbacks = Router(
        API_PREFIX, route_handlers=[ReceiptCallbackController, InboundCallbackController], request_class=ApiRequest
    )
    database = sqlalchemy_config(settings)
    app = Litestar(
        route_handlers=[api, callbacks, HealthController, MetricsController, static_files_router()],
        plugins=[
            SQLAlchemyPlugin(config=database),
            NotificationCLIPlugin(),
            problem_details_plugin(),
            StrictStructSchemaPlugin(),
            HTMXPlugin(),
            ConsolePlugin(settings, database),
        ],
        middleware=[prometheus_config().middleware, bind_path_ids],
        exception_handlers=exception_handlers,
        lifespan=[job_queue_lifespan(settings)],
        state=State({"settings": settings, THROTTLE_STATE_KEY: SignInThrottle(database, settings)}),
        openapi_config=openapi_config(openapi_components()),
        logging_config=None,
    )
    # Outside Litestar's own layers, so that unknown paths and early errors get a request id and an
    # access line too.
    app.asgi_handler = RequestContext(security_headers(app.asgi_handler, https_only=settings.secure_cookies))
    return app
