"""What the consent tests share: a directory of clients with and without consent, some of them
suppressed, written set-based, and who a mailing may reach worked out from those rows by the test."""

from __future__ import annotations

from dataclasses import dataclass

from tests.delivery.observe import rows


@dataclass(frozen=True, slots=True)
class Directory:
    consenting: set[str]
    not_consenting: set[str]
    suppressed: set[str]

    @property
    def everyone(self) -> set[str]:
        return self.consenting | self.not_consenting

    def reached(self, kind: str) -> set[str]:
        """Who a mailing of this kind to everyone may reach: the oracle, from the rows as written."""
        allowed = self.consenting if kind == "advertising" else self.everyone
        return allowed - self.suppressed


async def write_directory(
    conninfo: str, count: int, *, consent_every: int = 2, suppress_every: int = 5, first: int = 0, tag: str = ""
) -> Directory:
    """``count`` clients (phones 76000000000 + i): every ``consent_every``-th has given consent (one
    in three of the rest gave it and revoked it), every ``suppress_every``-th is suppressed."""
    await rows(
        conninfo,
        "INSERT INTO clients"
        " (phone, operator_code, tag, timezone, consent_given_at, consent_source, consent_revoked_at)"
        " SELECT '76' || lpad(g::text, 9, '0'), '916', %(tag)s, 'Europe/Moscow',"
        "   CASE WHEN mod(g, %(c)s) = 0 OR mod(g, 3) = 1 THEN now() - interval '1 day' END,"
        "   CASE WHEN mod(g, %(c)s) = 0 THEN 'web form' END,"
        "   CASE WHEN mod(g, %(c)s) <> 0 AND mod(g, 3) = 1 THEN now() - interval '1 hour' END"
        " FROM generate_series(%(first)s, %(first)s + %(count)s - 1) g RETURNING id",
        {"count": count, "c": consent_every, "first": first, "tag": tag},
    )
    await rows(
        conninfo,
        "INSERT INTO suppressions (phone, reason, created_by)"
        " SELECT '76' || lpad(g::text, 9, '0'), 'complaint', 'test'"
        " FROM generate_series(%(first)s, %(first)s + %(count)s - 1) g WHERE mod(g, %(s)s) = 0 RETURNING phone",
        {"count": count, "s": suppress_every, "first": first},
    )
    found = await rows(
        conninfo,
        "SELECT phone, consent_given_at IS NOT NULL AND consent_revoked_at IS NULL,"
        " EXISTS (SELECT FROM suppressions s WHERE s.phone = c.phone) FROM clients c WHERE tag = %(tag)s",
        {"tag": tag},
    )
    return Directory(
        consenting={p for p, consent, _ in found if consent},
        not_consenting={p for p, consent, _ in found if not consent},
        suppressed={p for p, _, suppressed in found if suppressed},
    )
