"""``campus agent`` commands and config validation errors that name the file and field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from campus_config import ConfigError
from campus_forward.outbox import Outbox
from campus_protocol.messages import MessageKind, State
from edge_agent.app import OUTBOX_FILE
from edge_agent.cli import SAMPLE_CONFIG, app
from edge_agent.settings import load_agent_settings
from tests.edge.support import PROFILE, VALUES

runner = CliRunner()


def write_config(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(SAMPLE_CONFIG)
    data["hub"]["password"] = "a-real-secret"
    data["data_dir"] = str(tmp_path / "data")
    data.update(changes)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_sample_config_validates_once_its_password_is_set(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--config", str(write_config(tmp_path))])

    assert result.exit_code == 0, result.output
    assert "gw-demo-school-1" in result.output and "ok" in result.output


def test_sample_config_placeholder_password_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SAMPLE_CONFIG, encoding="utf-8")

    with pytest.raises(ConfigError, match=r"agent.yaml: hub.password: placeholder"):
        load_agent_settings(path)


def test_validate_names_file_and_field_of_an_unknown_profile(tmp_path: Path) -> None:
    data = yaml.safe_load(SAMPLE_CONFIG)
    devices = data["devices"]
    devices[2]["profile"] = "cold_room_v9"
    path = write_config(tmp_path, devices=devices)

    result = runner.invoke(app, ["validate", "--config", str(path)])

    assert result.exit_code == 2
    assert f'{path}: devices[2].profile: unknown profile "cold_room_v9" (known: ' in result.output


def test_duplicate_device_id_is_refused(tmp_path: Path) -> None:
    devices = yaml.safe_load(SAMPLE_CONFIG)["devices"]
    devices[1]["id"] = devices[0]["id"]

    with pytest.raises(ConfigError, match=r"devices: ids duplicated: \['room-101-lights'\]"):
        load_agent_settings(write_config(tmp_path, devices=devices))


def test_device_field_error_names_its_path(tmp_path: Path) -> None:
    devices = yaml.safe_load(SAMPLE_CONFIG)["devices"]
    devices[1]["modbus"]["port"] = 70000

    with pytest.raises(ConfigError, match=r"agent.yaml: devices\[1\]\.modbus\.port: "):
        load_agent_settings(write_config(tmp_path, devices=devices))


def test_outbox_stats_reports_depth_and_last_seq(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    with Outbox(tmp_path / "data" / OUTBOX_FILE) as outbox:
        outbox.append(MessageKind.HEALTH, State(online=True))
        outbox.append(MessageKind.HEALTH, State(online=True))

    result = runner.invoke(app, ["outbox", "stats", "--config", str(path)])

    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # Rich wraps at 80 columns, where the path ends
    assert "2 rows waiting, last seq 1" in words
    assert "0 windows merged, 0 windows dropped" in words


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["once"], ["outbox", "stats"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])

    assert result.exit_code == 0
    assert "Usage" in result.output


async def test_once_polls_every_device_and_prints_decoded_values(
    tmp_path: Path, modbus_server: Any
) -> None:
    server = await modbus_server(PROFILE, VALUES)
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    (profiles_dir / "test_meter.yaml").write_text(
        yaml.safe_dump(PROFILE.model_dump(mode="json", exclude_defaults=True)), encoding="utf-8"
    )
    device = {
        "id": "m1",
        "profile": PROFILE.id,
        "room": "lab-3",
        "modbus": {"host": "127.0.0.1", "port": server.port},
    }
    path = write_config(tmp_path, devices=[device])

    result = await asyncio.to_thread(
        runner.invoke, app, ["once", "-c", str(path), "--profiles", str(profiles_dir)]
    )

    assert result.exit_code == 0, result.output
    assert "1234.5" in result.output and "-12.5" in result.output
