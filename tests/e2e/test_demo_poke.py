"""`campus demo` poked while it runs, as someone showing it would: stop a device, kill an agent,
cut a school's uplink; then Ctrl-C. Everything is a real process; the test reads the demo's
output, its hub API and its agents' status pages from outside."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from campus_cli.main import app
from cloud_hub.broker import free_port
from tests.marked_processes import ProcessMark
from tests.waiting import eventually_blocking

runner = CliRunner()
SCHOOL = "d1-s01"


class RunningDemo:
    def __init__(self, workdir: Path, port: int, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.api = f"http://127.0.0.1:{port}"
        self.output_path = workdir.parent / "demo.out"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "campus_cli.main", "demo", "--districts", "1",
             "--schools-per-district", "1", "--window-s", "2", "--port", str(port),
             "--workdir", str(workdir)],
            stdout=self.output_path.open("wb"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def poke(self, *args: str) -> str:
        result = runner.invoke(app, ["poke", *args, "--demo-dir", str(self.workdir)])
        assert result.exit_code == 0, result.output
        return result.output

    def school_status(self) -> str:
        """As the hub API tells it, signed in with the token the demo prints."""
        token = re.search(r"Bearer ([\w.-]+)", self.output)
        assert token is not None, "the demo prints a bearer token"
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        url = f"{self.api}/api/v1/schools/{SCHOOL}"
        status: str = httpx.get(url, headers=headers, timeout=5).json()["status"]
        return status

    def agent_pid(self) -> int:
        """The agent process, found by its config path (unique to this test's workdir)."""
        config = str(self.workdir / "agents")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if config in cmdline and "agent\x00run" in cmdline:
                    return int(entry.name)
        raise AssertionError("no agent process")

    def stop(self) -> None:
        """As Ctrl-C would: the demo stops its children; killed after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    eventually_blocking(condition, timeout_s, what, retry_on=(httpx.HTTPError,))


@pytest.fixture
def demo(tmp_path: Path, process_mark: ProcessMark) -> Iterator[RunningDemo]:
    """The demo, stopped as Ctrl-C would; what it started (broker, hub, agents) runs in sessions
    of their own, so ``process_mark`` then checks that none outlived it."""
    running = RunningDemo(tmp_path / "demo", free_port(), process_mark.env(COLUMNS="200"))
    try:
        wait_until(lambda: "Ctrl-C stops the demo" in running.output, 90, "the demo is up")
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(300)  # a demo start, an agent restart and a stop on a loaded machine
def test_a_poked_demo_shows_the_fault_restarts_a_dead_agent_and_stops_quietly(
    demo: RunningDemo,
) -> None:
    assert "agent status page" in demo.output
    status_page = next(
        w
        for w in demo.output.split()
        if w.startswith("http://127.0.0.1:")
        and w.rstrip("/").rsplit(":", 1)[1].isdigit()
        and demo.api not in w
    )
    assert httpx.get(status_page, timeout=5).status_code == 200

    device = "lab1-gas"  # polled every 2 s
    assert "offline" in demo.poke("stop-device", SCHOOL, device)
    wait_until(lambda: demo.school_status() == "degraded", 20, "the school turns amber")
    demo.poke("heal", SCHOOL, device)

    os.kill(demo.agent_pid(), signal.SIGKILL)
    wait_until(lambda: "restarting it" in demo.output, 15, "the dead agent is reported")
    wait_until(lambda: demo.school_status() == "online", 30, "the restarted agent reports in")

    assert "uplink cut" in demo.poke("cut-uplink", SCHOOL)
    assert f"{SCHOOL}: uplink cut" in demo.poke("status")
    demo.poke("restore-uplink", SCHOOL)

    started = time.monotonic()
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(20) == 0
    took = time.monotonic() - started
    output = demo.output
    assert "demo stopped: every process has exited" in output
    assert "Traceback" not in output
    shutdown = output[output.index("stopping:") :]
    for noise in ("Future exception was never retrieved", "pymodbus", "ERROR", "exception"):
        assert noise not in shutdown
    assert took < 15, f"Ctrl-C took {took:.1f} s"
