"""`campus demo` as a user runs it: a subprocess brings a small city online (a regional hub per
district under a central hub) and stops cleanly."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_hub.broker import free_port
from tests.marked_processes import ProcessMark


@pytest.mark.parametrize(
    ("path", "broker"),
    [
        ("/usr/sbin:/usr/bin:/bin", "Mosquitto, hub listener 127.0.0.1:"),
        # without Mosquitto on PATH the demo falls back to amqtt in-process, and says so
        ("/usr/bin:/bin", "amqtt in-process on 127.0.0.1:"),
    ],
    ids=["mosquitto", "amqtt-fallback"],
)
@pytest.mark.timeout(300)  # four hub processes and agents start on 2 cores, shared under load
def test_demo_brings_every_school_online_and_stops_by_itself(
    tmp_path: Path, path: str, broker: str, process_mark: ProcessMark
) -> None:
    if broker.startswith("amqtt") and shutil.which("mosquitto", path=path):
        pytest.skip("mosquitto is installed in /usr/bin on this machine")
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable, "-m", "campus_cli.main", "demo",
            "--districts", "2", "--schools-per-district", "2",
            "--duration", "8", "--port", str(free_port()), "--workdir", str(workdir),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        env=process_mark.env({}, COLUMNS="200", PATH=path),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert broker in output
    assert re.search(r"all 4 schools online after \d+\.\d s", output), output
    assert "hub API: http://127.0.0.1:" in output
    assert re.search(r"sign in: admin / \S{12,} at http://127.0.0.1:\d+/login", output), output
    assert "demo stopped: every process has exited" in output
    assert "did not exit cleanly" not in output
    central = r"city-wide \(central hub\): sign in: admin / \S{12,} at http://127.0.0.1:\d+/login"
    assert re.search(central, output), output
    assert re.search(r"hub-d2: admin / \S{12,} at http://127.0.0.1:\d+/login", output), output
    logs = sorted(p.name for p in (workdir / "logs").iterdir())
    gateways = ["gw-d1-s01.log", "gw-d1-s02.log", "gw-d2-s01.log", "gw-d2-s02.log"]
    assert logs == [*gateways, "hub-central.log", "hub-d1.log", "hub-d2.log"]


def test_demo_refuses_a_port_in_use_with_a_clear_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "campus_cli.main", "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} is already in use: pass --port with a free one" in result.stdout
