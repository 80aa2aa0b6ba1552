"""The agent's systemd unit: restarts on failure, runs as its own user, keeps its outbox in a
state directory, logs to journald, and is a unit systemd accepts."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campus_cli.main import app

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "campus-agent.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_the_agent_restarts_on_failure_as_its_own_user_with_a_state_directory() -> None:
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "campus" and service["User"] != "root"
    assert service["StateDirectory"] == "campus-agent"
    assert service["StandardOutput"] == service["StandardError"] == "journal"


def test_its_commands_are_ones_the_cli_has() -> None:
    service = unit()["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        argv = shlex.split(service[key])
        assert argv[0].endswith("/campus")
        command = [a for a in argv[1:] if not a.startswith("-") and "/" not in a][:2]
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        for option in (a for a in argv if a.startswith("--")):
            assert option in result.output, f"{key}: {option}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit() -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, check=False
    )
    problems = [
        line for line in result.stderr.splitlines()
        if line.strip() and "/opt/campus/bin/campus" not in line  # not installed on this machine
    ]  # fmt: skip
    assert problems == []
