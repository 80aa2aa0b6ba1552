"""HubSettings: defaults < hub.yaml < CAMPUS_HUB_ env < CLI flags; no placeholder secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from campus_config import ConfigError
from cloud_hub.settings import HubSettings, load_hub_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAMPUS_HUB_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_a_regional_hub_on_local_sqlite() -> None:
    settings = HubSettings(development=True)

    assert settings.role == "regional"
    assert settings.database_url == "sqlite:///./var/hub/hub.db"
    assert (settings.broker.username, settings.offline_after_s, settings.share_group) == (
        "hub",
        30,
        None,
    )


@pytest.mark.parametrize(
    "url", ["postgres://u:p@db/hub", "postgresql://u:p@db/hub", "postgresql+psycopg2://u:p@db/hub"]
)
def test_a_postgres_url_is_routed_through_psycopg_3(url: str) -> None:
    assert (
        HubSettings(database_url=url, development=True).database_url
        == "postgresql+psycopg://u:p@db/hub"
    )


def test_a_placeholder_broker_password_is_refused_outside_development() -> None:
    with pytest.raises(ConfigError, match=r"broker\.password: placeholder"):
        load_hub_settings(broker={"password": "changeme"})
    assert load_hub_settings(development=True).development


def test_a_placeholder_influx_token_is_refused_outside_development() -> None:
    influx = {"url": "http://influxdb:8086", "org": "o", "bucket": "b", "token": "changeme"}
    with pytest.raises(ConfigError, match=r"influx\.token: placeholder"):
        load_hub_settings(broker={"password": "a-real-one"}, influx=influx)
    assert load_hub_settings(development=True, influx=influx).influx is not None


def test_precedence_env_over_yaml_and_flags_over_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path, "role: central\nbroker:\n  host: yaml-host\n  port: 1111\n  password: s3cret\n"
    )
    monkeypatch.setenv("CAMPUS_HUB_BROKER__PORT", "2222")

    from_env = load_hub_settings(path)
    from_flags = load_hub_settings(path, broker={"port": 3333})

    assert (from_env.role, from_env.broker.host, from_env.broker.port) == (
        "central",
        "yaml-host",
        2222,
    )
    assert (from_flags.broker.host, from_flags.broker.port) == ("yaml-host", 3333)
    assert from_flags.broker.password.get_secret_value() == "s3cret"


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "development: true\nrole: planetary\n")

    with pytest.raises(ConfigError, match=r"hub\.yaml: role: "):
        load_hub_settings(path)


def test_share_group_must_be_a_plain_name() -> None:
    with pytest.raises(ConfigError, match="share_group"):
        load_hub_settings(development=True, share_group="a/b")
