"""The application factory: explicit wiring of every domain's controllers and the shared plugins."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from notification import __version__
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
from notification.stats.controllers import StatsController

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    api = Router(API_PREFIX, route_handlers=[ClientController, MailingController, StatsController, MessageController])
    return Litestar(
        route_handlers=[api, HealthController],
        plugins=[SQLAlchemyPlugin(config=sqlalchemy_config(settings)), NotificationCLIPlugin()],
        exception_handlers=exception_handlers,
        lifespan=[job_queue_lifespan(settings)],
        openapi_config=OpenAPIConfig(
            title="notification",
            version=__version__,
            description="Client directory, SMS mailings and their delivery statistics.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        logging_config=None,
    )
