"""Who may enter the console, and with which role: ``NOTIFICATION_ADMIN_EMAILS`` and
``NOTIFICATION_VIEWER_EMAILS`` hold addresses or ``@domain`` entries. An address named outright
decides over a domain (``@example.com`` admins with ``intern@example.com`` a viewer); named in
both lists alike, admin wins. Compared without regard to case."""

from __future__ import annotations

from collections.abc import Iterable

from notification.auth import Role


def _normalised(entries: Iterable[str]) -> frozenset[str]:
    return frozenset(entry.strip().lower() for entry in entries if entry.strip())


class AccessRules:
    def __init__(self, admins: Iterable[str], viewers: Iterable[str]) -> None:
        self.admins = _normalised(admins)
        self.viewers = _normalised(viewers)

    def role_of(self, email: str) -> Role | None:
        address = email.strip().lower()
        local, at, domain = address.rpartition("@")
        if not local or not at or not domain:
            return None
        for key in (address, f"@{domain}"):
            if key in self.admins:
                return Role.ADMIN
            if key in self.viewers:
                return Role.VIEWER
        return None


__all__ = ("AccessRules",)
