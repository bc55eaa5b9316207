"""Who may enter with which role, and the settings of single sign-on."""

from __future__ import annotations

import pytest

from notification.auth import Role
from notification.config import load_settings
from notification.sso.access import AccessRules

RULES = AccessRules(
    admins=["Boss@Example.com", "@ops.example.com", "both@example.com"],
    viewers=["@example.com", "intern@ops.example.com", "both@example.com"],
)


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("boss@example.com", Role.ADMIN),
        ("BOSS@EXAMPLE.COM", Role.ADMIN),
        ("anyone@ops.example.com", Role.ADMIN),
        # An address named outright decides over its domain; named in both lists, admin wins.
        ("intern@ops.example.com", Role.VIEWER),
        ("both@example.com", Role.ADMIN),
        ("reader@example.com", Role.VIEWER),
        ("someone@sub.example.com", None),
        ("someone@example.com.evil.org", None),
        ("@example.com", None),
        ("example.com", None),
        ("", None),
    ],
)
def test_roles_come_from_the_addresses_and_domains_configured(email: str, role: Role | None) -> None:
    assert RULES.role_of(email) == role


def test_token_sign_in_defaults_to_on_only_without_an_issuer() -> None:
    issuer = {"NOTIFICATION_OIDC_ISSUER": "https://id.example.com", "NOTIFICATION_OIDC_CLIENT_ID": "console"}
    assert load_settings({}).token_sign_in is True
    assert load_settings(issuer).token_sign_in is False
    assert load_settings({**issuer, "NOTIFICATION_CONSOLE_TOKEN_SIGNIN": "true"}).token_sign_in is True
    assert load_settings({"NOTIFICATION_CONSOLE_TOKEN_SIGNIN": "false"}).token_sign_in is False


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NOTIFICATION_OIDC_ISSUER": "https://id.example.com"}, "NOTIFICATION_OIDC_CLIENT_ID must be set"),
        ({"NOTIFICATION_OIDC_ISSUER": "id.example.com", "NOTIFICATION_OIDC_CLIENT_ID": "c"}, "provider's URL"),
        ({"NOTIFICATION_ADMIN_EMAILS": "boss"}, "NOTIFICATION_ADMIN_EMAILS takes addresses or @domain entries"),
        ({"NOTIFICATION_VIEWER_EMAILS": "@"}, "NOTIFICATION_VIEWER_EMAILS takes addresses or @domain entries"),
        ({"NOTIFICATION_CONSOLE_TOKEN_SIGNIN": "maybe"}, "NOTIFICATION_CONSOLE_TOKEN_SIGNIN must be true or false"),
    ],
)
def test_bad_sign_in_settings_are_refused_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(environ)


def test_the_client_secret_stays_out_of_the_repr() -> None:
    settings = load_settings(
        {
            "NOTIFICATION_OIDC_ISSUER": "https://id.example.com",
            "NOTIFICATION_OIDC_CLIENT_ID": "console",
            "NOTIFICATION_OIDC_CLIENT_SECRET": "very-secret-value",
        }
    )
    assert "very-secret-value" not in repr(settings)
