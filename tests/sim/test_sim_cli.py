"""``campus sim``: every command has help, lists are complete, a fleet writes agent device lists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from cloud_hub.broker import free_port
from device_profiles.schema import Profile
from edge_agent.settings import AgentSettings
from simulators import cli
from simulators.faults import FaultKind

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=250, force_terminal=False))


@pytest.mark.parametrize("args", [[], ["fleet"], ["device"], ["list-faults"], ["list-profiles"]])
def test_every_command_has_help(args: list[str]) -> None:
    result = runner.invoke(cli.app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_list_faults_names_every_fault_kind() -> None:
    result = runner.invoke(cli.app, ["list-faults"])
    assert result.exit_code == 0
    for kind in FaultKind:
        assert kind.value in result.output


def test_list_profiles_names_every_bundled_profile(profiles: dict[str, Profile]) -> None:
    result = runner.invoke(cli.app, ["list-profiles"])
    assert result.exit_code == 0
    for profile_id in profiles:
        assert profile_id in result.output


def test_fleet_runs_and_writes_device_lists_the_agent_accepts(tmp_path: Path) -> None:
    out = tmp_path / "agents"
    args = [
        "fleet", "--districts", "1", "--schools-per-district", "2", "--seed", "5",
        "--site-broker-port", str(free_port()), "--speed", "60", "--duration", "0.3",
        "--out-dir", str(out),
    ]  # fmt: skip
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "d1-s02" in result.output and "gw-d1-s01" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["d1-s01.yaml", "d1-s02.yaml", "fleet.json"]
    fragment = yaml.safe_load((out / "d1-s01.yaml").read_text())
    settings = AgentSettings.model_validate({**fragment, "development": True})
    assert settings.gateway.id == "gw-d1-s01"
    assert {d.profile for d in settings.devices} >= {"arlight_dali_logic_lite", "eastron_sdm120"}


def test_device_serves_one_profile_on_the_given_port() -> None:
    result = runner.invoke(
        cli.app,
        ["device", "sensecap_s_co2_03", "--port", "0", "--fixed", "co2=800", "--duration", "0.1"],
    )
    assert result.exit_code == 0, result.output
    assert "Modbus TCP on 127.0.0.1:" in result.output and "unit id 45" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_profile"], "unknown profile"),
        (["sensecap_s_co2_03", "--fixed", "co2"], "point=number"),
        (["sensecap_s_co2_03", "--fixed", "nope=1"], "nope"),
        (["sensecap_s_co2_03", "--fault", "melted"], "unknown fault"),
    ],
)
def test_device_refuses_bad_input_with_a_usage_error(args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, ["device", *args, "--duration", "0.1"])
    assert result.exit_code == 2
    assert message in result.output
