"""Every table of the service, imported in one place for alembic and the test fixtures."""

from notification.clients.models import Client
from notification.db import Base
from notification.mailings.models import Mailing
from notification.messages.models import Message, MessageStatus
from notification.stats.models import ClientCount, MessageCount, MessageSendsPerMinute

__all__ = (
    "Base",
    "Client",
    "ClientCount",
    "Mailing",
    "Message",
    "MessageCount",
    "MessageSendsPerMinute",
    "MessageStatus",
)
