"""``campus hub``: every command has --help; migrate creates tables; validate reports each check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from cloud_hub.broker import MosquittoBroker
from cloud_hub.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["ingest"],
        ["migrate"],
        ["validate"],
        ["user"],
        ["user", "add"],
        ["user", "list"],
        ["user", "revoke"],
        ["user", "role"],
        ["user", "token"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])

    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_migrate_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'hub.db'}"

    result = runner.invoke(app, ["migrate", "--database-url", url, "--development"])

    assert result.exit_code == 0, result.output
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {
        "district",
        "school",
        "gateway",
        "device",
        "telemetry_window",
        "seen_seq",
        "alert",
    } <= tables


def hub_tls_env(broker: MosquittoBroker) -> dict[str, str]:
    """The hub CLI trusts the test broker's CA through the environment."""
    return {"CAMPUS_HUB_BROKER__TLS__CA_FILE": str(broker.ca_file)}


def test_validate_passes_against_a_reachable_database_and_broker(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            "--database-url", f"sqlite:///{tmp_path / 'hub.db'}",
            "--broker-host", mosquitto_broker.host,
            "--broker-port", str(mosquitto_broker.port),
            "--broker-password", mosquitto_broker.hub_password,
            "--broker-ca-file", str(mosquitto_broker.ca_file),
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "broker" in result.output and "ok" in result.output


def test_validate_fails_on_a_wrong_broker_password(
    tmp_path: Path, mosquitto_broker: MosquittoBroker
) -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            "--database-url", f"sqlite:///{tmp_path / 'hub.db'}",
            "--broker-host", mosquitto_broker.host,
            "--broker-port", str(mosquitto_broker.port),
            "--broker-password", "wrong-password",
        ],
        env=hub_tls_env(mosquitto_broker),
    )  # fmt: skip

    assert result.exit_code == 1
    assert "database" in result.output


def test_an_invalid_configuration_exits_2_with_the_field_named() -> None:
    result = runner.invoke(app, ["validate", "--broker-password", "changeme"])

    assert result.exit_code == 2
    assert "broker.password" in result.output
