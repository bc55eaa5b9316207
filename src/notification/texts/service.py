"""What the services that store a text ask of texts: is it a template they may store, and what does
it cost. The check reads which attribute names exist, so it takes the caller's session."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.errors import InvalidInput
from notification.lib.sql import load
from notification.mailings.sms import SmsText, measure
from notification.texts.templates import (
    CLIENT_FIELDS,
    Compiled,
    Recipient,
    TemplateProblem,
    check_template,
    is_template,
)

statements = load(__package__, "queries.sql")

Session = AsyncSession | async_scoped_session[AsyncSession]

NOBODY = Recipient(phone="")
"""A recipient with every value empty: what a text costs at the least."""


async def check_text(session: Session, text: str, field: str = "text") -> None:
    """Refuse (400 naming ``field``) a text that is not a template this service renders: a syntax
    it does not allow, or a variable that is neither a client field nor any client's attribute."""
    if not is_template(text):
        return
    try:
        # First with every name taken, for the names used (and any syntax error); then against the
        # names clients really have, read in one query.
        used = check_template(text, lambda _: True) - set(CLIENT_FIELDS)
        known: set[str] = set()
        if used:
            result = await session.execute(statements.text("known_attribute_names"), {"names": sorted(used)})
            known = {name for (name,) in result}
        check_template(text, known.__contains__)
    except TemplateProblem as problem:
        raise InvalidInput.of(field, problem.message) from None


def least_cost(text: str) -> SmsText:
    """A plain text's own cost; a template's with every value empty (its defaults applied): what
    each of its messages takes at the least. A message stores what its own text took."""
    if not is_template(text):
        return measure(text)
    return measure(Compiled(text).render(NOBODY))
