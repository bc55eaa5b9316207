"""The providers' secrets at rest: encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from
``cryptography``) under the keys of ``NOTIFICATION_SECRET_KEY``.

``MultiFernet`` encrypts with the first key and decrypts with any of them, so a key is rotated by
putting a new one first and keeping the old one after it until every row is written again.
A secret is only ever decrypted where a provider is built, never for a page or an answer."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from notification.config import Settings


class SecretsUnavailable(Exception):
    """No key is set, or none of them opens a stored secret."""


class SecretBox:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.secret_key)

    @property
    def can_store(self) -> bool:
        return self._fernet is not None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            msg = "NOTIFICATION_SECRET_KEY is not set: no secret can be stored"
            raise SecretsUnavailable(msg)
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        if self._fernet is None:
            msg = "NOTIFICATION_SECRET_KEY is not set: the stored secret cannot be read"
            raise SecretsUnavailable(msg)
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            msg = "none of the keys of NOTIFICATION_SECRET_KEY opens the stored secret"
            raise SecretsUnavailable(msg) from None
