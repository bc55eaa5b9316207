"""The client directory's dependencies, as Litestar injects them."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.clients.services import ClientService

provide_client_service = create_service_provider(ClientService)

__all__ = ("provide_client_service",)
