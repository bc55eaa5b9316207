"""Every table of the service, imported in one place for alembic and the test fixtures."""

from notification.audiences.models import Audience, ClientFacetCount, OperatorCodeName
from notification.audit.models import AuditEntry
from notification.clients.models import Client
from notification.console.sessions import ConsoleSession
from notification.db import Base
from notification.idempotency.models import IdempotencyKey
from notification.inbound.models import InboundMessage
from notification.mailings.models import Mailing
from notification.messages.models import Message, MessageStatus
from notification.provider.models import ProviderConfigVersion, ProviderRateBudget, ProviderRoute, StoredProvider
from notification.receipts.models import MessageDeliveryCount, ReceiptPart, UnmatchedReceipt
from notification.reports.models import ReportDelivery
from notification.schedules.models import Schedule
from notification.security.models import SignInFailures
from notification.stats.models import ClientCount, MessageCount, MessageSendsPerMinute
from notification.suppressions.models import Suppression
from notification.test_sends.models import TestSend
from notification.webhooks.models import WebhookEndpoint, WebhookOutbox

__all__ = (
    "Audience",
    "AuditEntry",
    "Base",
    "Client",
    "ClientCount",
    "ClientFacetCount",
    "ConsoleSession",
    "IdempotencyKey",
    "InboundMessage",
    "Mailing",
    "Message",
    "MessageCount",
    "MessageDeliveryCount",
    "MessageSendsPerMinute",
    "MessageStatus",
    "OperatorCodeName",
    "ProviderConfigVersion",
    "ProviderRateBudget",
    "ProviderRoute",
    "ReceiptPart",
    "ReportDelivery",
    "Schedule",
    "SignInFailures",
    "StoredProvider",
    "Suppression",
    "TestSend",
    "UnmatchedReceipt",
    "WebhookEndpoint",
    "WebhookOutbox",
)
