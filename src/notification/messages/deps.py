"""The messages' dependencies, as Litestar injects them."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.messages.services import MessageService

provide_message_service = create_service_provider(MessageService)

__all__ = ("provide_message_service",)
