"""The console wired into the app: its routes under /admin, its templates, sessions and CSRF."""

from __future__ import annotations

import secrets
from pathlib import Path

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Router
from litestar.config.app import AppConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.static_files import create_static_files_router

from notification.audiences.console import AudienceConsoleController, OperatorCodeConsoleController
from notification.config import Settings
from notification.console.audit import AuditConsoleController, provide_console_audit_trail
from notification.console.auth import SignInController, UnknownPageController
from notification.console.clients import ClientConsoleController
from notification.console.controls import MailingControlsController
from notification.console.csrf import SessionBoundCSRFMiddleware
from notification.console.dashboard import DashboardController
from notification.console.errors import exception_handlers
from notification.console.headers import console_headers, console_headers_sending_forms_to
from notification.console.mailings import MailingConsoleController
from notification.console.providers import ProviderConsoleController
from notification.console.query import refuse_unstorable_query
from notification.console.reports import DevReportsController
from notification.console.sessions import CONSOLE_PATH, session_middleware
from notification.console.sso import SingleSignOnController
from notification.console.suppressions import InboundConsoleController, SuppressionConsoleController
from notification.console.templating import DEV_MAILBOX_STATE, template_config
from notification.reports.mailbox import dev_mail_dir
from notification.schedules.console import ScheduleConsoleController
from notification.sso.access import AccessRules
from notification.sso.provider import OpenIDProvider
from notification.webhooks.console import WebhookConsoleController

STATIC_DIR = Path(__file__).parent / "static"
CSRF_COOKIE = "notification_csrf"


class ConsolePlugin(InitPluginProtocol):
    def __init__(self, settings: Settings, alchemy: SQLAlchemyAsyncConfig) -> None:
        self.settings = settings
        self.alchemy = alchemy
        # One per app: it keeps the provider's discovery document and keys between sign-ins.
        self.sso_provider = (
            OpenIDProvider(settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret)
            if settings.oidc_issuer
            else None
        )
        self.access_rules = AccessRules(settings.admin_emails, settings.viewer_emails)
        # Signs CSRF tokens and the pending sign-in cookie. A random one is enough for one process;
        # several behind one address must share one.
        self.secret = settings.console_secret or secrets.token_hex(32)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.template_config = template_config()
        app_config.state[DEV_MAILBOX_STATE] = dev_mail_dir(self.settings)
        app_config.route_handlers.extend([self.router(), static_router()])
        return app_config

    def router(self) -> Router:
        settings = self.settings
        csrf = CSRFConfig(
            secret=self.secret,
            cookie_name=CSRF_COOKIE,
            cookie_path=CONSOLE_PATH,
            cookie_httponly=True,
            cookie_samesite="lax",
        )

        def provide_settings() -> Settings:
            return settings

        sso_provider, access_rules, secret = self.sso_provider, self.access_rules, self.secret

        def provide_sso_provider() -> OpenIDProvider | None:
            return sso_provider

        def provide_access_rules() -> AccessRules:
            return access_rules

        def provide_signing_secret() -> str:
            return secret

        return Router(
            CONSOLE_PATH,
            route_handlers=[
                SignInController,
                SingleSignOnController,
                DashboardController,
                MailingConsoleController,
                MailingControlsController,
                ClientConsoleController,
                AudienceConsoleController,
                OperatorCodeConsoleController,
                ScheduleConsoleController,
                WebhookConsoleController,
                AuditConsoleController,
                ProviderConsoleController,
                SuppressionConsoleController,
                InboundConsoleController,
                DevReportsController,
                UnknownPageController,
            ],
            middleware=[
                console_headers_sending_forms_to(
                    sso_provider.origins if sso_provider else None, secure_cookies=settings.secure_cookies
                ),
                session_middleware(self.alchemy, settings.session_ttl_s),
                DefineMiddleware(SessionBoundCSRFMiddleware, config=csrf, public_url=settings.public_url),
            ],
            dependencies={
                "console_settings": Provide(provide_settings, sync_to_thread=False),
                "sso_provider": Provide(provide_sso_provider, sync_to_thread=False),
                "access_rules": Provide(provide_access_rules, sync_to_thread=False),
                "signing_secret": Provide(provide_signing_secret, sync_to_thread=False),
                "audit": Provide(provide_console_audit_trail, sync_to_thread=False),
            },
            exception_handlers=exception_handlers,
            guards=[refuse_unstorable_query],
            include_in_schema=False,
        )


def static_router() -> Router:
    return create_static_files_router(
        path=f"{CONSOLE_PATH}/static",
        directories=[STATIC_DIR],
        name="console-static",
        middleware=[console_headers],
        cache_control=CacheControlHeader(max_age=3600),
        include_in_schema=False,
    )
