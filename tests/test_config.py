from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from notification.config import Settings, load_settings

# The defaults the README's settings table documents, written out: changing one is a decision the README and
# this table must both record.
DOCUMENTED_DEFAULTS: dict[str, object] = {
    "database_url": None,
    "api_tokens": (),
    "database_pool_size": 10,
    "provider_url": "http://127.0.0.1:9090/v1",
    "provider_token": "",
    "provider_timeout_s": 10.0,
    "provider_concurrency": 200,
    "provider_rate_limit": None,
    "provider_callback_secret": "",
    "receipt_timeout_s": 172800.0,
    "secret_key": (),
    "send_batch_size": 500,
    "send_lease_s": 10.0,
    "result_flush_size": 100,
    "retry_base_s": 1.0,
    "retry_max_s": 300.0,
    "worker_concurrency": 4,
    "worker_heartbeat_s": 2.0,
    "worker_poll_s": 1.0,
    "worker_metrics_port": 9100,
    "stalled_job_after_s": 6.0,
    "log_level": "INFO",
    "log_json": True,
    "data_dir": Path(".notification"),
    "message_retention_days": None,
    "console_secret": "",
    "session_ttl_s": 28800.0,
    "session_max_age_s": 43200.0,
    "sign_in_failures_allowed": 10,
    "sign_in_failure_window_s": 900.0,
    "trusted_proxies": ("127.0.0.1",),
    "secure_cookies": False,
    "public_url": "",
    "allow_plain_http": False,
    "oidc_issuer": "",
    "oidc_client_id": "",
    "oidc_client_secret": "",
    "admin_emails": (),
    "viewer_emails": (),
    "console_token_signin": None,
    "report_timezone": "UTC",
    "report_cron": "30 5 * * *",
    "report_recipients": (),
    "report_from": "notification@localhost",
    "smtp_url": "",
    "smtp_allow_plaintext_auth": False,
    "smtp_timeout_s": 30.0,
    "report_retry_base_s": 60.0,
    "report_retry_max_s": 1800.0,
    "schedule_lead_s": 600.0,
    "webhook_timeout_s": 10.0,
    "webhook_concurrency": 8,
    "webhook_retry_base_s": 5.0,
    "webhook_retry_max_s": 600.0,
    "webhook_disable_after_s": 86400.0,
    "webhook_retention_s": 604800.0,
    "stop_words": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА"),
    "stop_reply": "",
    "suppress_invalid_numbers": False,
}
README = Path(__file__).resolve().parents[1] / "README.md"
# A row of the settings table: | `NOTIFICATION_X` | default | meaning |
_SETTING_ROW = re.compile(r"^\| `NOTIFICATION_(\w+)` \| ([^|]+) \|", re.MULTILINE)


def test_defaults_when_nothing_is_set_are_the_documented_ones() -> None:
    settings = load_settings({})
    assert {f.name for f in fields(Settings)} == set(DOCUMENTED_DEFAULTS)
    assert {name: getattr(settings, name) for name in DOCUMENTED_DEFAULTS} == DOCUMENTED_DEFAULTS


def _as_documented(value: object) -> str:
    if value is None or value == ():
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def test_the_readme_documents_every_setting_with_these_defaults() -> None:
    documented = {name.lower(): default.strip() for name, default in _SETTING_ROW.findall(README.read_text())}
    expected = {name: _as_documented(value) for name, value in DOCUMENTED_DEFAULTS.items()}
    assert documented == expected


def test_values_are_parsed_to_their_types() -> None:
    settings = load_settings(
        {
            "NOTIFICATION_DATABASE_URL": "postgresql://u:p@db:5432/n",
            "NOTIFICATION_PROVIDER_CONCURRENCY": "50",
            "NOTIFICATION_PROVIDER_TIMEOUT_S": "2.5",
            "NOTIFICATION_LOG_JSON": "off",
            "NOTIFICATION_DATA_DIR": "/var/lib/notification",
            "UNRELATED": "ignored",
        }
    )
    assert settings.provider_concurrency == 50
    assert settings.provider_timeout_s == 2.5
    assert settings.log_json is False
    assert settings.data_dir == Path("/var/lib/notification")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/n"
    assert settings.psycopg_conninfo == "postgresql://u:p@db:5432/n"


def test_the_provider_rate_limit_is_unset_or_parts_per_second() -> None:
    assert load_settings({}).provider_rate_limit is None
    assert load_settings({"NOTIFICATION_PROVIDER_RATE_LIMIT": ""}).provider_rate_limit is None
    assert load_settings({"NOTIFICATION_PROVIDER_RATE_LIMIT": "200"}).provider_rate_limit == 200.0
    assert load_settings({"NOTIFICATION_PROVIDER_RATE_LIMIT": "2.5"}).provider_rate_limit == 2.5


def test_driver_in_the_url_is_replaced_for_each_client() -> None:
    settings = load_settings({"NOTIFICATION_DATABASE_URL": "postgresql+psycopg://db/n"})
    assert settings.sqlalchemy_url == "postgresql+asyncpg://db/n"
    assert settings.psycopg_conninfo == "postgresql://db/n"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NOTIFICATION_PROVIDER_CONCURRENCY", "many", "NOTIFICATION_PROVIDER_CONCURRENCY must be a number"),
        ("NOTIFICATION_LOG_JSON", "perhaps", "NOTIFICATION_LOG_JSON must be true or false"),
        ("NOTIFICATION_SEND_LEASE_S", "1", "NOTIFICATION_SEND_LEASE_S must be at least 2"),
        ("NOTIFICATION_PROVIDER_RATE_LIMIT", "fast", "NOTIFICATION_PROVIDER_RATE_LIMIT must be a number"),
        ("NOTIFICATION_PROVIDER_RATE_LIMIT", "0", "NOTIFICATION_PROVIDER_RATE_LIMIT must be a positive number"),
        (
            "NOTIFICATION_STALLED_JOB_AFTER_S",
            "4",
            "NOTIFICATION_STALLED_JOB_AFTER_S must exceed twice NOTIFICATION_WORKER_HEARTBEAT_S",
        ),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings({name: value})


def test_secrets_stay_out_of_the_repr() -> None:
    settings = load_settings({"NOTIFICATION_PROVIDER_TOKEN": "s3cret-token"})
    assert "s3cret-token" not in repr(settings)


@pytest.mark.parametrize(
    "tokens", ["short-token", "CHANGE_ME", "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME", f"{'a' * 40},short"]
)
def test_a_short_or_placeholder_token_stops_the_start_with_a_clear_message(tokens: str) -> None:
    with pytest.raises(ValueError, match="NOTIFICATION_API_TOKENS: every token must be at least 32 random characters"):
        load_settings({"NOTIFICATION_API_TOKENS": tokens})
    assert load_settings({"NOTIFICATION_API_TOKENS": "a" * 32}).api_tokens == ("a" * 32,)


@pytest.mark.parametrize("name", ["NOTIFICATION_PROVIDER_URL", "NOTIFICATION_OIDC_ISSUER"])
def test_plain_http_to_another_host_is_refused_unless_allowed(name: str) -> None:
    base = {"NOTIFICATION_OIDC_CLIENT_ID": "console"}
    with pytest.raises(ValueError, match=f"{name} must use https://"):
        load_settings({**base, name: "http://sms.example.com/v1"})
    assert load_settings({**base, name: "https://sms.example.com/v1"})
    assert load_settings({**base, name: "http://127.0.0.1:9090/v1"})
    assert load_settings({**base, name: "http://localhost:9090/v1"})
    assert load_settings({**base, name: "http://fake-provider:9090/v1", "NOTIFICATION_ALLOW_PLAIN_HTTP": "true"})


def test_a_secret_key_that_is_not_a_fernet_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="NOTIFICATION_SECRET_KEY: key 2 is not a Fernet key") as refused:
        load_settings({"NOTIFICATION_SECRET_KEY": f"{Fernet.generate_key().decode()},not-a-key-abc"})
    assert "not-a-key-abc" not in str(refused.value)
