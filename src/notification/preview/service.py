"""One read of the client directory answers the whole preview: clients matching the filter are
counted per (operator code, tag, time zone) in the order of the index that holds those three
columns (an index-only scan, no sort, no hash of a million strings), then rolled up by operator
code and by time zone. The send window is then judged once per distinct time zone with the
same functions the engine plans with."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import and_, case, func, literal, or_, select, tablesample, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm import aliased

from notification.audiences.service import check_audience_choice, with_saved_audience
from notification.clients.models import Client
from notification.clients.queries import audience_conditions
from notification.mailings.models import Mailing, MailingKind
from notification.mailings.schemas import LeftOut, MailingCreate
from notification.mailings.services import parse_local_time
from notification.mailings.sms import measure
from notification.provider.models import ProviderRoute, StoredProvider
from notification.provider.routes import Router, rule_of, stored_router
from notification.send_window import is_open, next_opening
from notification.suppressions.models import Suppression
from notification.texts.service import least_cost
from notification.texts.templates import Compiled, Recipient

TOP = 20

Session = AsyncSession | async_scoped_session[AsyncSession]


class OperatorCodeShare(msgspec.Struct):
    operator_code: str
    clients: int


class TimezoneShare(msgspec.Struct):
    timezone: str
    clients: int


class ProviderShare(msgspec.Struct):
    name: Annotated[
        str | None, msgspec.Meta(description="The provider; null: no enabled provider takes them (not sent)")
    ]
    clients: int


class TextCost(msgspec.Struct):
    encoding: Annotated[str, msgspec.Meta(description="GSM-7 or UCS-2")]
    units: Annotated[int, msgspec.Meta(description="Length in septets (GSM-7) or UTF-16 code units (UCS-2)")]
    parts: Annotated[int, msgspec.Meta(description="SMS parts of one message")]


class PartsBucket(msgspec.Struct):
    parts: Annotated[int, msgspec.Meta(description="SMS parts of one message")]
    clients: Annotated[int, msgspec.Meta(description="Matching clients whose message takes that many (estimated)")]
    share: Annotated[float, msgspec.Meta(description="Their share of the matching clients")]
    margin: Annotated[float, msgspec.Meta(description="The share's margin of error at 95 % (0 when exact)")]


class PartsDistribution(msgspec.Struct):
    """How many recipients take 1, 2, 3... parts. A plain text costs every recipient the same; a
    personalised one is rendered for every matching client when they are few, else for a random
    sample of them, and the shares carry their margin of error at 95 % confidence."""

    exact: Annotated[bool, msgspec.Meta(description="Counted over every matching client, not estimated")]
    sample_size: Annotated[int, msgspec.Meta(description="Clients whose text was rendered (0 for a plain text)")]
    buckets: list[PartsBucket]
    parts_total_margin: Annotated[int, msgspec.Meta(description="parts_total's margin of error at 95 % (0 when exact)")]


class RenderedExample(msgspec.Struct):
    client_id: int
    text: str
    encoding: str
    parts: int


class AudiencePreview(msgspec.Struct):
    clients: Annotated[int, msgspec.Meta(description="Clients the filter matches")]
    left_out: Annotated[
        LeftOut,
        msgspec.Meta(
            description="Matching clients the mailing would leave out: suppressed numbers (either kind), and"
            " for advertising the clients whose consent does not stand (a suppressed one counts as suppressed)"
        ),
    ]
    recipients: Annotated[
        int, msgspec.Meta(description="Matching clients the mailing would reach: clients less left_out")
    ]
    by_operator_code: Annotated[list[OperatorCodeShare], msgspec.Meta(description=f"The {TOP} largest, largest first")]
    by_timezone: Annotated[list[TimezoneShare], msgspec.Meta(description=f"The {TOP} largest, largest first")]
    outside_window_at_start: Annotated[
        int, msgspec.Meta(description="Matching clients whose send window is closed at start_at (0 without a window)")
    ]
    never_inside_before_end: Annotated[
        int, msgspec.Meta(description="Matching clients whose window does not open between start_at and end_at")
    ]
    text: TextCost
    parts_total: Annotated[
        int,
        msgspec.Meta(
            description="SMS parts the mailing would send: clients times parts, for a personalised text the"
            " sum of each recipient's (estimated from a sample when they are many)"
        ),
    ]
    parts_distribution: PartsDistribution
    providers: Annotated[
        list[ProviderShare],
        msgspec.Meta(
            description=(
                "The matching clients by the provider their first attempt goes to under the current routes "
                "(a retry or a provider that is down may move one to the rule's next provider), largest first"
            )
        ),
    ]
    examples: Annotated[
        list[RenderedExample],
        msgspec.Meta(description="A personalised text rendered for up to three matching clients (random ones)"),
    ] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Audience:
    """What a preview is asked about: the fields of a mailing that decide who gets what, when."""

    text: str
    start_at: dt.datetime
    end_at: dt.datetime
    operator_codes: list[str]
    tags: list[str]
    window: tuple[dt.time, dt.time] | None
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    kind: str = MailingKind.SERVICE.value


def _rollup_query(audience: Audience) -> Any:
    groups = (
        select(Client.operator_code, Client.timezone, func.count().label("clients"))
        .where(*audience_conditions(audience.operator_codes, audience.tags, audience.attributes))
        .group_by(Client.operator_code, Client.tag, Client.timezone)
        .subquery()
    )
    return select(groups.c.operator_code, groups.c.timezone, func.sum(groups.c.clients).label("clients")).group_by(
        func.grouping_sets(tuple_(groups.c.operator_code), tuple_(groups.c.timezone))
    )


async def _left_out(session: Session, audience: Audience) -> LeftOut:
    """The matching clients planning would leave out, counted as planning decides (count_left_out):
    only the left-out rows are read past the filter."""
    consent = and_(Client.consent_given_at.is_not(None), Client.consent_revoked_at.is_(None))
    suppressed = Suppression.phone.is_not(None)
    advertising = audience.kind == MailingKind.ADVERTISING
    ineligible = or_(suppressed, ~consent) if advertising else suppressed
    query = (
        select(func.count().filter(suppressed), func.count().filter(Suppression.phone.is_(None)))
        .select_from(Client)
        .outerjoin(Suppression, Suppression.phone == Client.phone)
        .where(*audience_conditions(audience.operator_codes, audience.tags, audience.attributes), ineligible)
    )
    found = (await session.execute(query)).one()
    return LeftOut(suppressed=int(found[0]), no_consent=int(found[1]))


def _top(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]


def _window_reach(audience: Audience, by_zone: dict[str, int]) -> tuple[int, int]:
    """Clients outside the window at start_at, and those whose window never opens before end_at."""
    if audience.window is None:
        return 0, 0
    start, end = audience.window
    outside = never = 0
    for name, clients in by_zone.items():
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        try:
            closed = not is_open(start, end, tz, audience.start_at)
            never_opens = closed and next_opening(start, end, tz, audience.start_at) >= audience.end_at
        except OverflowError:
            # Within a day or two of the calendar's ends (years 1 and 9999) the zone's local days
            # cannot be computed: its clients are not judged, and both figures are lower bounds.
            continue
        outside += clients if closed else 0
        never += clients if never_opens else 0
    return outside, never


async def current_router(session: Session) -> Router:
    """The routes as the workers read them (provider/store.py), without the secrets: enough to route."""
    providers = await session.execute(select(StoredProvider.name, StoredProvider.enabled).order_by(StoredProvider.id))
    routes = await session.execute(select(ProviderRoute).order_by(ProviderRoute.position))
    rules = [rule_of(r.operator_codes, r.phone_prefixes, r.providers) for r in routes.scalars()]
    return stored_router([(name, enabled) for name, enabled in providers], rules)


async def _provider_split(
    session: Session, audience: Audience, router: Router, by_code: dict[str, int]
) -> list[ProviderShare]:
    """The router itself decides, once per (operator code, longest rule prefix of the phone) group:
    the directory is counted by those groups in one statement (by operator code alone, from the
    rollup already read, when no rule names a prefix)."""
    prefixes = sorted(router.phone_prefixes, key=lambda p: (-len(p), p))
    groups: list[tuple[str, str, int]]
    if not prefixes:
        groups = [(code, "", n) for code, n in by_code.items()]
    else:
        longest = case(*((func.starts_with(Client.phone, p), literal(p)) for p in prefixes), else_=literal(""))
        query = (
            select(Client.operator_code, longest.label("prefix"), func.count())
            .where(*audience_conditions(audience.operator_codes, audience.tags, audience.attributes))
            .group_by(Client.operator_code, longest)
        )
        groups = [(code, prefix, int(n)) for code, prefix, n in await session.execute(query)]
    split: dict[str | None, int] = {}
    for code, prefix, n in groups:
        name = router.first_choice(code, prefix)
        split[name] = split.get(name, 0) + n
    return [
        ProviderShare(name, n) for name, n in sorted(split.items(), key=lambda item: (-item[1], item[0] or "")) if n
    ]


async def preview(session: AsyncSession | async_scoped_session[AsyncSession], audience: Audience) -> AudiencePreview:
    by_code: dict[str, int] = {}
    by_zone: dict[str, int] = {}
    for operator_code, timezone, clients in await session.execute(_rollup_query(audience)):
        if operator_code is not None:
            by_code[operator_code] = int(clients)
        else:
            by_zone[timezone] = int(clients)
    total = sum(by_code.values())
    left_out = await _left_out(session, audience)
    providers = await _provider_split(session, audience, await current_router(session), by_code)
    outside, never = _window_reach(audience, by_zone)
    sms = least_cost(audience.text)
    compiled = Compiled(audience.text)
    if compiled.personalised and total:
        distribution, parts_total, examples = await _personal_costs(session, audience, compiled, total)
    else:
        bucket = PartsBucket(sms.parts, total, 1.0 if total else 0.0, 0.0)
        distribution, parts_total, examples = PartsDistribution(True, 0, [bucket], 0), total * sms.parts, []
    return AudiencePreview(
        clients=total,
        left_out=left_out,
        recipients=total - left_out.suppressed - left_out.no_consent,
        by_operator_code=[OperatorCodeShare(code, n) for code, n in _top(by_code)],
        by_timezone=[TimezoneShare(zone, n) for zone, n in _top(by_zone)],
        outside_window_at_start=outside,
        never_inside_before_end=never,
        text=TextCost(encoding=sms.encoding.value, units=sms.units, parts=sms.parts),
        parts_total=parts_total,
        parts_distribution=distribution,
        providers=providers,
        examples=examples,
    )


SAMPLE_SIZE = 2000
"""Clients a preview renders a personalised text for: every matching one up to this many, else a
random sample this large (about ±2.2 % on a share at 95 %, whatever the audience's size)."""
Z_95 = 1.96
EXAMPLES = 3


async def _personal_costs(
    session: Session, audience: Audience, compiled: Compiled, total: int
) -> tuple[PartsDistribution, int, list[RenderedExample]]:
    """The text rendered and measured for the matching clients, or a random sample of them, and
    what that says of all of them."""
    conditions = audience_conditions(audience.operator_codes, audience.tags, audience.attributes)
    exact = total <= SAMPLE_SIZE
    source: Any = Client
    if not exact:
        # Each row of the directory drawn with the same probability, a little over the size so that
        # the LIMIT is usually reached (BERNOULLI reads every page, sorts nothing of what it skips).
        percent = min(100.0, 100.0 * SAMPLE_SIZE * 1.2 / total)
        source = aliased(Client, tablesample(Client.__table__, func.bernoulli(percent), name="sampled"))
    # At random, so that the examples (and the LIMIT) take no side of the table.
    statement = select(source).where(*conditions).order_by(func.random()).limit(SAMPLE_SIZE)
    clients = list((await session.scalars(statement)).all())
    costs = []
    examples: list[RenderedExample] = []
    for client in clients:
        text = compiled.render(
            Recipient(client.phone, client.tag, client.operator_code, client.timezone, client.attributes)
        )
        cost = measure(text)
        costs.append(cost.parts)
        if len(examples) < EXAMPLES:
            examples.append(RenderedExample(client.id, text, cost.encoding.value, cost.parts))
    return (*_distribution(costs, total, exact=exact), examples)


def _distribution(costs: list[int], total: int, *, exact: bool) -> tuple[PartsDistribution, int]:
    """Shares of each part count among the rendered, scaled to ``total``; from a sample, each share's
    margin at 95 % (normal approximation, finite population corrected) and the total's."""
    n = len(costs)
    if n == 0:
        return PartsDistribution(exact, 0, [], 0), 0
    fpc = 0.0 if exact or total <= 1 else math.sqrt(max(0, total - n) / (total - 1))
    buckets = []
    for parts in sorted(set(costs)):
        share = costs.count(parts) / n
        margin = Z_95 * math.sqrt(share * (1 - share) / n) * fpc
        buckets.append(PartsBucket(parts, round(share * total), round(share, 4), round(margin, 4)))
    mean = sum(costs) / n
    spread = math.sqrt(sum((c - mean) ** 2 for c in costs) / (n - 1)) if n > 1 else 0.0
    total_margin = round(Z_95 * spread / math.sqrt(n) * fpc * total)
    parts_total = sum(costs) if exact else round(mean * total)
    return PartsDistribution(exact, n, buckets, total_margin), parts_total


async def planned_audience_of_request(session: Session, data: MailingCreate) -> Audience:
    """The request's audience as planning would read it: a saved audience's filter in place of its own."""
    await check_audience_choice(session, data.audience_id, data.filter)
    return await with_saved_audience(session, audience_of_request(data), data.audience_id)


async def planned_audience_of_mailing(session: Session, mailing: Mailing) -> Audience:
    """The mailing's audience as its next planning would read it: who its saved audience matches now."""
    return await with_saved_audience(session, audience_of_mailing(mailing), mailing.audience_id)


def audience_of_request(data: MailingCreate) -> Audience:
    window = None
    if data.send_window is not None:
        window = (parse_local_time(data.send_window.start), parse_local_time(data.send_window.end))
    return Audience(
        data.text,
        data.start_at,
        data.end_at,
        list(data.filter.operator_codes),
        list(data.filter.tags),
        window,
        dict(data.filter.attributes),
        data.kind.value,
    )


def audience_of_mailing(mailing: Mailing) -> Audience:
    window = None
    if mailing.send_window_start is not None and mailing.send_window_end is not None:
        window = (mailing.send_window_start, mailing.send_window_end)
    return Audience(
        mailing.text,
        mailing.start_at,
        mailing.end_at,
        list(mailing.filter_operator_codes),
        list(mailing.filter_tags),
        window,
        dict(mailing.filter_attributes),
        mailing.kind,
    )
