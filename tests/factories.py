from __future__ import annotations

import datetime as dt
import itertools

from polyfactory import PostGenerated, Use
from polyfactory.factories.msgspec_factory import MsgspecFactory
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

from notification.clients.models import Client
from notification.clients.schemas import ClientCreate
from notification.mailings.models import Mailing, MailingKind
from notification.mailings.schemas import MailingCreate, MailingFilter
from notification.mailings.sms import measure

_phones = itertools.count(79_000_000_000)
TIMEZONES = ("Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Vladivostok", "UTC")


def next_phone() -> str:
    return str(next(_phones))


class ClientFactory(SQLAlchemyFactory[Client]):
    __check_model__ = False
    __set_primary_key__ = False

    phone = Use(next_phone)
    operator_code = Use(lambda: ClientFactory.__random__.choice(["916", "903", "999"]))
    tag = Use(lambda: ClientFactory.__random__.choice(["", "vip", "new"]))
    timezone = Use(lambda: ClientFactory.__random__.choice(TIMEZONES))
    attributes = Use(dict)
    consent_given_at = None
    consent_source = None
    consent_revoked_at = None
    created_at = Use(lambda: dt.datetime.now(dt.UTC))
    updated_at = Use(lambda: dt.datetime.now(dt.UTC))


class MailingFactory(SQLAlchemyFactory[Mailing]):
    __check_model__ = False
    __set_primary_key__ = False

    text = Use(lambda: "Hello from the factory")
    kind = MailingKind.SERVICE.value
    left_out_suppressed = None
    left_out_no_consent = None
    start_at = Use(lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    end_at = Use(lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    filter_operator_codes = Use(list)
    filter_tags = Use(list)
    filter_attributes = Use(dict)
    send_window_start = None
    send_window_end = None
    plan_version = 1
    planned_version = 0
    planned_at = None
    messages_purged_at = None
    paused_at = None
    # A factory mailing is a one-off with its own filter: no audience, no schedule.
    audience_id = None
    schedule_id = None
    occurrence_at = None
    # Decided from the text, as the service does.
    encoding = PostGenerated(lambda _, values: measure(values["text"]).encoding.value)
    parts = PostGenerated(lambda _, values: measure(values["text"]).parts)
    created_at = Use(lambda: dt.datetime.now(dt.UTC))
    updated_at = Use(lambda: dt.datetime.now(dt.UTC))


class ClientCreateFactory(MsgspecFactory[ClientCreate]):
    phone = Use(next_phone)
    timezone = Use(lambda: ClientCreateFactory.__random__.choice(TIMEZONES))
    operator_code = None
    tag = Use(lambda: ClientCreateFactory.__random__.choice(["", "vip", "new"]))
    attributes = Use(dict)
    # No consent unless a test gives it: a client that agreed to advertising is a choice.
    consent_given_at = None
    consent_source = None
    consent_revoked_at = None


class MailingCreateFactory(MsgspecFactory[MailingCreate]):
    text = Use(lambda: "Hello")
    kind = MailingKind.SERVICE
    start_at = Use(lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    end_at = Use(lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    filter = Use(MailingFilter)
    send_window = None
