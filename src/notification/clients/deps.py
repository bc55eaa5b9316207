"""The client directory's dependencies, as Litestar injects them."""

from __future__ import annotations

from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.clients.services import ClientService
from notification.pagination import bigint_parameter

provide_client_service = create_service_provider(ClientService)

ClientId = Annotated[int, bigint_parameter("Client id")]
"""A client's id in a path."""

__all__ = ("ClientId", "provide_client_service")
