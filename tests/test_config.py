from __future__ import annotations

from pathlib import Path

import pytest

from notification.config import Settings, load_settings


def test_defaults_when_nothing_is_set() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.database_url is None
    assert settings.provider_url == "http://127.0.0.1:9090/v1"


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
