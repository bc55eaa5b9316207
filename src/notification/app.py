"""The application factory: explicit wiring of every domain's controllers and the shared plugins."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from notification import __version__
from notification.auth import SECURITY, openapi_components, require_token
from notification.cli import NotificationCLIPlugin
from notification.clients.controllers import ClientController
from notification.config import Settings, get_settings
from notification.db import sqlalchemy_config
from notification.errors import exception_handlers
from notification.health import HealthController
from notification.jobs import job_queue_lifespan
from notification.logging import configure_logging
from notification.mailings.controllers import MailingController
from notification.messages.controllers import MessageController
from notification.metrics import MetricsController, prometheus_config
from notification.observability import RequestContext, bind_path_ids
from notification.preview.controllers import PreviewController
from notification.stats.controllers import StatsController
from notification.test_sends.controllers import TestSendController

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
            PreviewController,
            TestSendController,
        ],
        guards=[require_token(settings.api_tokens)],
        security=SECURITY,
    )
    app = Litestar(
        route_handlers=[api, HealthController, MetricsController],
        plugins=[SQLAlchemyPlugin(config=sqlalchemy_config(settings)), NotificationCLIPlugin()],
        middleware=[prometheus_config().middleware, bind_path_ids],
        exception_handlers=exception_handlers,
        lifespan=[job_queue_lifespan(settings)],
        state=State({"settings": settings}),
        openapi_config=OpenAPIConfig(
            title="notification",
            version=__version__,
            description="Client directory, SMS mailings and their delivery statistics.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=openapi_components(),
        ),
        logging_config=None,
    )
    # Outside Litestar's own layers, so that unknown paths and early errors get a request id and an
    # access line too.
    app.asgi_handler = RequestContext(app.asgi_handler)
    return app
