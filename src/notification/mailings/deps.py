"""The mailings' dependencies, as Litestar injects them."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.mailings.services import MailingService

provide_mailing_service = create_service_provider(MailingService)

__all__ = ("provide_mailing_service",)
