"""MQTT site ingest: 100 sensors publish JSON on the site broker, one edge agent forwards them.

The sensors (``--publishers`` processes of paho clients, paced in 10 ms ticks) publish
``{"temperature": .., "humidity": .., "co2": ..}`` on ``sensors/<id>/data`` at a total rate R.
The agent (``campus agent run``, its own process) takes them through one ``mqtt_groups`` entry
(``sensors/{device}/data``), aggregates 1-second windows and forwards them over TLS to the hub
listener of the same Mosquitto. A subscriber outside the agent adds up the window counts of
``temperature``: every sensor message is one count, so delivered = sent means zero loss. Per R:
sent, taken (the agent's own count of readings, from its status page) and delivered
messages, loss, the agent's CPU-seconds per 1,000 messages and % of a core,
and the window age on arrival of the last one (a growing age is a growing backlog). After the
publishers stop, the run waits until everything sent arrived or nothing came for 3 s.

The limit, measured in the same run: a plain paho subscriber's msgs/s on the same site broker
with the same publishers.

    .venv/bin/python bench/mqtt_site.py [R ...] [--seconds 30] [--publishers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from tools.agent_run import (
    AgentProcess,
    agent_config,
    cpu_seconds,
    hub_subscriber,
    machine,
    peak_rss_mb,
    running_broker,
)

from cloud_hub.broker import MosquittoBroker, free_port

SENSORS = 100
PROFILE = {
    "id": "bench_sensor",
    "name": "Bench sensor: three values in a JSON object",
    "domain": "environment",
    "protocol": "mqtt",
    "mqtt": {
        "expected_interval_s": 10.0,
        "points": [
            {"name": "temperature", "path": "temperature", "unit": "°C"},
            {"name": "humidity", "path": "humidity", "unit": "%"},
            {"name": "co2", "path": "co2", "unit": "ppm"},
        ],
    },
}


def publish(port: int, sensors: range, rate: float, seconds: float, sent: Any) -> None:
    """One publisher process: ``sensors`` in turn, ``rate`` messages/s for ``seconds``."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payloads = [
        orjson.dumps({"temperature": 20 + s / 100, "humidity": 45.0, "co2": 600 + s})
        for s in sensors
    ]
    topics = [f"sensors/s{s}/data" for s in sensors]
    done = 0
    last = None
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(rate * elapsed) - done
        for _ in range(max(0, due)):
            index = done % len(topics)
            last = client.publish(topics[index], payloads[index], qos=0)
            done += 1
        time.sleep(0.01)
    if last is not None:
        last.wait_for_publish(timeout=30)  # every message written to the broker's socket
    client.loop_stop()
    client.disconnect()
    with sent.get_lock():
        sent.value += done


def run_publishers(port: int, rate: float, seconds: float, processes: int) -> int:
    sent = multiprocessing.Value("q", 0)
    share = SENSORS // processes
    workers = [
        multiprocessing.Process(
            target=publish,
            args=(port, range(i * share, (i + 1) * share), rate / processes, seconds, sent),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return int(sent.value)


class WindowCounter:
    """Hub-side subscriber: sensor messages carried by windows (the temperature counts)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.messages = 0
        self.last_age = 0.0
        self._lock = threading.Lock()
        self.client = hub_subscriber(broker, "bench-windows", self._on_message)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if not message.topic.endswith("/telemetry"):
            return
        from datetime import datetime

        body = orjson.loads(message.payload)["body"]
        windows = body.get("windows", [body])
        counted = sum(
            w["points"]["temperature"]["count"] for w in windows if "temperature" in w["points"]
        )
        age = time.time() - datetime.fromisoformat(windows[-1]["window_end"]).timestamp()
        with self._lock:
            self.messages += counted
            self.last_age = age

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def settle(counter: WindowCounter, sent: int, quiet_s: float = 3.0, limit_s: float = 60.0) -> None:
    """Wait until every sent message is delivered, or nothing arrived for ``quiet_s``."""
    deadline = time.monotonic() + limit_s
    seen, since = -1, time.monotonic()
    while counter.messages < sent and time.monotonic() < deadline:
        if counter.messages != seen:
            seen, since = counter.messages, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return
        time.sleep(0.2)


def agent_readings(status_port: int) -> float:
    """MQTT readings the agent took, from its status page's Prometheus metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=10) as page:
        for line in page.read().decode().splitlines():
            if line.startswith('campus_source_readings_total{protocol="mqtt"}'):
                return float(line.split()[-1])
    return float("nan")


def plain_subscriber_rate(port: int, rate: float, seconds: float, processes: int) -> float:
    """msgs/s a plain paho subscriber receives from the same publishers on the site broker."""
    received = 0
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        with lock:
            received += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plain")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("sensors/+/data", qos=1)
    client.loop_start()
    time.sleep(0.5)
    started = time.perf_counter()
    sent = run_publishers(port, rate, seconds, processes)
    time.sleep(1.0)
    elapsed = time.perf_counter() - started - 1.0
    client.loop_stop()
    client.disconnect()
    print(f"      plain subscriber: {received} of {sent} sent", flush=True)
    return received / elapsed


def run_one(rate: float, seconds: float, processes: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-site-") as tmp,
        running_broker(Path(tmp) / "broker") as broker,
    ):
        work = Path(tmp)
        status_port = free_port()
        assert broker.site_port is not None
        config = agent_config(
            broker, work,
            site_broker={"host": broker.host, "port": broker.site_port},
            status_port=status_port,
            mqtt_groups=[{"profile": PROFILE["id"], "topic": "sensors/{device}/data",
                          "room": "hall", "max_devices": SENSORS}],
        )  # fmt: skip
        counter = WindowCounter(broker)
        agent = AgentProcess(work, config, PROFILE)
        try:
            wait_until_forwarding(agent, status_port)
            time.sleep(1)  # its site subscription follows the start
            cpu0 = cpu_seconds(agent.pid)
            sent = run_publishers(broker.site_port, rate, seconds, processes)
            cpu1 = cpu_seconds(agent.pid)
            settle(counter, sent)  # the last windows close and the outbox drains
            rss = peak_rss_mb(agent.pid)
            delivered, age = counter.messages, counter.last_age
            taken = agent_readings(status_port)
            if delivered < sent:
                print(agent.log_tail(3000), flush=True)
                log_lines = broker.log_path.read_text().splitlines()
                drops = [line for line in log_lines if "drop" in line.lower()]
                print("\n".join(drops[-5:]), flush=True)
            agent.check_running()
        finally:
            agent.stop()
            counter.stop()
        limit = plain_subscriber_rate(broker.site_port, rate, min(seconds, 10), processes)
        cpu = cpu1 - cpu0
        return {
            "rate": rate,
            "sent": sent,
            "taken": taken,
            "delivered": delivered,
            "lost": sent - delivered,
            "cpu_per_1000": 1000 * cpu / max(delivered, 1),
            "core_pct": 100 * cpu / seconds,
            "rss_mb": rss,
            "age": age,
            "plain_msgs_s": limit,
        }


def wait_until_forwarding(agent: AgentProcess, status_port: int, limit_s: float = 120.0) -> None:
    """Until the agent's status page says its uplink is connected (a loaded machine starts it
    slowly)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        agent.check_running()
        url = f"http://127.0.0.1:{status_port}/status"
        try:
            with urllib.request.urlopen(url, timeout=5) as page:
                if orjson.loads(page.read())["uplink_connected"]:
                    return
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the agent did not connect within {limit_s:.0f} s: {agent.log_tail()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rates", nargs="*", type=float, default=[2000, 5000, 10000, 20000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--publishers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        sys.exit("mosquitto not found: make mosquitto (or apt-get install mosquitto)")
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    print(
        f"{'R msg/s':>8} {'sent':>8} {'taken':>8} {'delivered':>9} {'lost':>7} "
        f"{'CPU s/1000 msgs':>15} "
        f"{'% core':>7} {'peak RSS MB':>11} {'age at end s':>12} {'plain sub msgs/s':>16}"
    )
    for rate in args.rates:
        r = run_one(rate, args.seconds, args.publishers)
        print(
            f"{rate:>8.0f} {r['sent']:>8.0f} {r['taken']:>8.0f} {r['delivered']:>9.0f} "
            f"{r['lost']:>7.0f} "
            f"{r['cpu_per_1000']:>15.4f} {r['core_pct']:>7.1f} {r['rss_mb']:>11.0f} "
            f"{r['age']:>12.2f} {r['plain_msgs_s']:>16.0f}",
            flush=True,
        )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
