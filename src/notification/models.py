"""Every table of the service, imported in one place for alembic and the test fixtures."""

from notification.clients.models import Client
from notification.db import Base
from notification.idempotency.models import IdempotencyKey
from notification.mailings.models import Mailing
from notification.messages.models import Message, MessageStatus
from notification.provider.models import ProviderRateBudget
from notification.test_sends.models import TestSend

__all__ = (
    "Base",
    "Client",
    "IdempotencyKey",
    "Mailing",
    "Message",
    "MessageStatus",
    "ProviderRateBudget",
    "TestSend",
)
