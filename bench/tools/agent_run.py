"""An edge agent under benchmark: its config, its own process, and the hub-side subscriber that
counts what it forwards. Shared by the agent benchmarks (``bench/modbus_fleet.py``,
``bench/mqtt_site.py``), which import it as ``tools.agent_run``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from campus_protocol import HUB_SESSION_TOPIC, HubSession, encode_hub_session
from campus_protocol.topics import hub_subscription
from cloud_hub.broker import MosquittoBroker

GATEWAY = "gw-bench"
ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

OnMessage = Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]


def machine() -> str:
    """Host, CPU, cores, Python and load average, for the figures' header."""
    load = os.getloadavg()
    return (
        f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running_broker(workdir: Path, **options: Any) -> Iterator[MosquittoBroker]:
    """A benchmark gateway's Mosquitto (``options`` as ``MosquittoBroker`` takes them), stopped
    however the run ends."""
    broker = MosquittoBroker(workdir, gateways=[GATEWAY], **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def hub_subscriber(broker: MosquittoBroker, client_id: str, on_message: OnMessage) -> mqtt.Client:
    """A paho client (own thread) on the hub listener over TLS, subscribed to every uplink."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(broker.hub_username, broker.hub_password)
    assert broker.ca_file is not None
    client.tls_set(ca_certs=str(broker.ca_file))
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(hub_subscription(), qos=1)
    marker = HubSession(role="regional", at=datetime.now(UTC))  # as the hub does: uplinks wait
    client.publish(HUB_SESSION_TOPIC, encode_hub_session(marker), qos=1, retain=True)
    client.loop_start()
    return client


def agent_config(broker: MosquittoBroker, work: Path, **sections: Any) -> dict[str, Any]:
    """The benchmark gateway forwarding to ``broker`` over TLS in 1-second windows, plus
    ``sections`` (its devices, site broker, status port …)."""
    return {
        "gateway": {"id": GATEWAY,
                    "site": {"city_id": "bench", "district_id": "bench", "school_id": "bench"}},
        "hub": {"host": broker.host, "port": broker.port, "password": broker.password_for(GATEWAY),
                "tls": {"ca_file": str(broker.ca_file)}},
        "data_dir": str(work / "agent"),
        "window_s": 1.0,
        "heartbeat_s": 10.0,
        **sections,
    }  # fmt: skip


class AgentProcess:
    """``campus agent run`` with ``config`` and ``profile`` written into ``work``; its output
    goes to ``work/agent.log``."""

    def __init__(self, work: Path, config: dict[str, Any], profile: dict[str, Any]) -> None:
        self.log_path = work / "agent.log"
        (work / "agent.yaml").write_text(yaml.safe_dump(config))
        profiles = work / "profiles"
        profiles.mkdir(exist_ok=True)
        (profiles / f"{profile['id']}.yaml").write_text(yaml.safe_dump(profile))
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(PYTHON).with_name("campus")), "agent", "run", "-c", str(work / "agent.yaml"),
             "--profiles", str(profiles), "--log-level", "WARNING"],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text()[-chars:]

    def check_running(self) -> None:
        """Raise with the end of its log when the agent has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"agent exited: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
