"""The audiences' dependencies, as Litestar injects them."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.audiences.service import AudienceService

provide_audience_service = create_service_provider(AudienceService)

__all__ = ("provide_audience_service",)
