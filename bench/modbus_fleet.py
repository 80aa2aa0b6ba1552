"""Modbus fleet: one edge agent polling N Modbus TCP devices at 1 Hz, forwarding to Mosquitto.

Each simulated device (one port each, ``simulators.modbus_fleet_server`` processes of at most
1,000 devices) serves 16 holding registers = 8 big-endian float32 values rewritten every second.
The agent (``campus agent run``, its own process) polls every device every second, aggregates
1-second windows and forwards them over TLS to a local Mosquitto; a subscriber outside the agent
counts the points that arrive. Reported per N: delivered points/s against N x 8, the agent's
CPU-seconds per 1,000 points and % of one core (from /proc/<pid>/stat over the measured
interval), its peak RSS (VmHWM) and the age of windows on arrival (arrival - window end).

The limit, measured in the same run: a plain pymodbus client's reads/s (one client per device,
all concurrent, in one process) against the same simulators.

    .venv/bin/python bench/modbus_fleet.py [N ...] [--seconds 30] [--profile out.svg]

``--profile out.svg`` records the agent with py-spy during the measured interval of the last N
(a flame graph; any other suffix gives collapsed stacks for ``bench/tools/profile_top.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from pymodbus.client import AsyncModbusTcpClient
from tools.agent_run import (
    PYTHON,
    ROOT,
    AgentProcess,
    agent_config,
    cpu_seconds,
    hub_subscriber,
    machine,
    peak_rss_mb,
    running_broker,
)

from cloud_hub.broker import MosquittoBroker

POINTS = 8
PER_PROCESS = 1000
PROFILE = {
    "id": "bench_float8",
    "name": "Bench device: 8 float32 values in 16 holding registers",
    "domain": "energy",
    "protocol": "modbus",
    "modbus": {
        "poll_interval_s": 1.0,
        "timeout_s": 2.0,  # the profile default
        "points": [{"name": f"v{i}", "address": 2 * i, "type": "float32"} for i in range(POINTS)],
    },
}


class Counter:
    """A hub-side subscriber (paho, own thread): points and window ages as they arrive."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.points = 0
        self.messages = 0
        self.ages: list[float] = []
        self._lock = threading.Lock()
        self.client = hub_subscriber(broker, "bench-counter", self._on_message)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.topic.endswith("/telemetry"):
            return
        now = time.time()
        body = orjson.loads(message.payload)["body"]
        windows = body.get("windows", [body])
        points = sum(len(w["points"]) for w in windows)
        ends = [w["window_end"] for w in windows[:: max(1, len(windows) // 8)]]
        with self._lock:
            self.points += points
            self.messages += 1
            self.ages.extend(now - _epoch(end) for end in ends)

    def take(self) -> tuple[int, int, list[float]]:
        with self._lock:
            taken = (self.points, self.messages, self.ages)
            self.points, self.messages, self.ages = 0, 0, []
        return taken

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def start_simulators(first_port: int, devices: int) -> list[subprocess.Popen[bytes]]:
    processes = []
    for offset in range(0, devices, PER_PROCESS):
        count = min(PER_PROCESS, devices - offset)
        processes.append(
            subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "simulators.modbus_fleet_server",
                    "--first-port",
                    str(first_port + offset),
                    "--devices",
                    str(count),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("serving"):
            stop_processes(processes)
            raise RuntimeError(f"simulator did not start: {line}")
    return processes


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def free_port_run(count: int) -> int:
    """A first port with ``count`` free ports after it, probed one by one from a high range."""
    import socket

    base = 20000 + (os.getpid() * 7919) % 20000
    while True:
        taken = None
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken = port
                    break
        if taken is None:
            return base
        base = taken + 1 if taken + 1 + count < 60000 else 20000


def fleet_config(
    work: Path, broker: MosquittoBroker, first_port: int, devices: int
) -> dict[str, Any]:
    return agent_config(broker, work, devices=[
        {"id": f"dev-{d}", "profile": PROFILE["id"], "room": "hall",
         "modbus": {"host": "127.0.0.1", "port": first_port + d}}
        for d in range(devices)
    ])  # fmt: skip


async def plain_pymodbus_reads(first_port: int, devices: int, seconds: float) -> float:
    """Reads/s of plain pymodbus clients, one per device, all polling as fast as they can."""
    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=first_port + d, timeout=2, retries=0)
        for d in range(devices)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(client: AsyncModbusTcpClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await client.read_holding_registers(0, count=16, device_id=1)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return done / elapsed


def run_one(devices: int, seconds: float, profile_svg: Path | None) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp,
        running_broker(Path(tmp) / "broker", site_port=None) as broker,
    ):
        work = Path(tmp)
        first_port = free_port_run(devices)
        simulators = start_simulators(first_port, devices)
        try:
            return measure(work, broker, first_port, devices, seconds, profile_svg)
        finally:
            stop_processes(simulators)


def wait_until_delivering(counter: Counter, agent: AgentProcess, limit_s: float = 120.0) -> None:
    """Until the first points arrive (a loaded machine starts the agent slowly)."""
    deadline = time.monotonic() + limit_s
    while counter.points == 0:
        agent.check_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no points within {limit_s:.0f} s: {agent.log_tail()}")
        time.sleep(0.5)


def measure(
    work: Path,
    broker: MosquittoBroker,
    first_port: int,
    devices: int,
    seconds: float,
    profile_svg: Path | None,
) -> dict[str, float]:
    """The agent against ``devices`` running simulators, then the plain pymodbus limit."""
    counter = Counter(broker)
    agent = AgentProcess(work, fleet_config(work, broker, first_port, devices), PROFILE)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_until_delivering(counter, agent)
        time.sleep(max(3.0, devices / 250))  # connect every device, settle into windows
        counter.take()
        if profile_svg is not None:
            spy = subprocess.Popen(
                [
                    str(Path(PYTHON).with_name("py-spy")),
                    "record",
                    "-p",
                    str(agent.pid),
                    "-d",
                    str(int(seconds)),
                    "-r",
                    "50",
                    "-o",
                    str(profile_svg),
                    "--nonblocking",
                    "-f",
                    "flamegraph" if profile_svg.suffix == ".svg" else "raw",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0, t0 = cpu_seconds(agent.pid), time.perf_counter()
        time.sleep(seconds)
        cpu1, t1 = cpu_seconds(agent.pid), time.perf_counter()
        points, messages, ages = counter.take()
        rss = peak_rss_mb(agent.pid)
        agent.check_running()
        if points < 0.5 * devices * POINTS * (t1 - t0):
            lines = agent.log_path.read_text().splitlines()
            print(
                f"  under half delivered; agent log ({len(lines)} lines) ends:",
                *lines[-12:],
                sep="\n    ",
                flush=True,
            )
        if spy is not None:
            spy.wait(timeout=seconds + 60)
    finally:
        agent.stop()
        counter.stop()
    elapsed = t1 - t0
    limit = asyncio.run(plain_pymodbus_reads(first_port, min(devices, 500), 5.0))
    ages.sort()
    cpu = cpu1 - cpu0
    return {
        "devices": devices,
        "expected_pts": devices * POINTS,
        "delivered_pts": points / elapsed,
        "messages_s": messages / elapsed,
        "cpu_per_1000": 1000 * cpu / max(points, 1),
        "core_pct": 100 * cpu / elapsed,
        "rss_mb": rss,
        "age_p50": ages[len(ages) // 2] if ages else float("nan"),
        "age_max": ages[-1] if ages else float("nan"),
        "plain_reads_s": limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("devices", nargs="*", type=int, default=[200, 1000, 2000, 5000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy profile of the agent for the last N (.svg: flame graph)",
    )
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto not found: make mosquitto (or apt-get install mosquitto)")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    header = (
        f"{'N':>5} {'expected pts/s':>14} {'delivered pts/s':>15} {'msgs/s':>7} "
        f"{'CPU s/1000 pts':>14} {'% core':>7} {'peak RSS MB':>11} {'age p50 s':>9} "
        f"{'age max s':>9} {'plain pymodbus reads/s':>22}"
    )
    print(header)
    for index, devices in enumerate(args.devices):
        svg = args.profile if index == len(args.devices) - 1 else None
        r = run_one(devices, args.seconds, svg)
        print(
            f"{devices:>5} {r['expected_pts']:>14.0f} {r['delivered_pts']:>15.0f} "
            f"{r['messages_s']:>7.1f} {r['cpu_per_1000']:>14.4f} {r['core_pct']:>7.1f} "
            f"{r['rss_mb']:>11.0f} {r['age_p50']:>9.2f} {r['age_max']:>9.2f} "
            f"{r['plain_reads_s']:>22.0f}",
            flush=True,
        )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
