"""The example providers of ``notification dev``: the fake HTTP provider and the fake SMSC, stored
with an example route when no provider is stored yet (one stored by hand is never touched)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from notification.lib.sql import load
from notification.provider.secrets import SecretBox

statements = load(__package__, "example_providers.sql")

SMPP_OPERATOR_CODES = [str(code) for code in range(900, 930)]


def store_example_providers(
    conninfo: str, http_url: str, smsc_port: int, callback_secret: str = "", secret_key: tuple[str, ...] = ()
) -> bool:
    """True when they were stored (the table was empty). The HTTP one signs its receipt callbacks
    with ``callback_secret``, stored sealed under ``secret_key`` (none without a key)."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        row = conn.execute(statements["providers_stored"]).fetchone()
        if row is not None and row[0]:
            return False
        box = SecretBox(secret_key)
        sealed = box.seal(callback_secret) if callback_secret and box.can_store else None
        providers = [
            ("fake-http", "http", {"url": http_url}, 10, sealed),
            ("fake-smsc", "smpp", {"host": "127.0.0.1", "port": smsc_port, "system_id": "notification"}, 50, None),
        ]
        for name, kind, settings, window, secret in providers:
            params = {
                "name": name,
                "kind": kind,
                "settings": Jsonb(settings),
                "window": window,
                "callback_secret": secret,
            }
            conn.execute(statements["store_provider"], params)
        routes = [(SMPP_OPERATOR_CODES, ["fake-smsc", "fake-http"]), (None, ["fake-http"])]
        for position, (codes, names) in enumerate(routes):
            conn.execute(statements["store_route"], {"position": position, "operator_codes": codes, "providers": names})
    return True
