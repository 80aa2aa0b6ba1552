"""Safety latency at the edge, and a hub command's round trip.

1. MQTT-published value -> event committed in the outbox, and -> local action issued: a pool-zone
   monitor publishes "person in the zone" on the site broker (toggling every 150 ms); the agent's
   rule raises level I and its local action switches a relay. Measured from just before the
   publish to the outbox commit of the event (and to the action's start).
2. Polled value -> event committed: a smoke contact on the safety input module polled every
   0.5 s; the simulator's value changes at a random moment of the poll cycle. Target: no more
   than 50 ms beyond the poll period.
3. Hub command round trip: POST /api/v1/devices/{id}/commands (dim a DALI group) -> published
   QoS 1 -> agent checks, writes, reads back -> cmdres -> hub ingest -> GET shows succeeded.
4. The same round trip to a Zigbee2MQTT dimmer on the site broker: the agent publishes the set
   command QoS 1 and reads back from the state report the device publishes after it. Beside it,
   the floor: a plain client's set command -> that state report (site broker + simulator only).

Everything real: Mosquitto (TLS hub listener, site listener), the pymodbus simulator, the agent
and the hub (ingest, command publisher, API on SQLite) in this process, the MQTT publisher in a
thread of its own. It reuses the scenario tests' school (tests/scenarios/support.py).

    .venv/bin/python bench/safety_latency.py [raises]
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
from sqlalchemy.exc import OperationalError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.scenarios.support

from campus_forward.outbox import Outbox
from campus_protocol.messages import Event, EventState, MessageKind, Severity
from cloud_hub.broker import MosquittoBroker
from simulators.devices import SimulatedDevice
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock
from tests.scenarios.support import GATEWAY, PROFILES, Dev, running_hub, school

#: the bench toggles a condition on purpose: keep flapping detection from folding the raises
NO_FLAPPING = {"flapping": {"raises": 1000, "window_s": 1}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def line(label: str, values_ms: list[float], extra: str = "") -> None:
    print(
        f"{label:<46} n={len(values_ms):<4} p50 {statistics.median(values_ms):7.1f} ms  "
        f"p99 {pct(values_ms, 99):7.1f} ms  max {max(values_ms):7.1f} ms  {extra}"
    )


def record_event_commits(agent: object) -> list[tuple[float, Event]]:
    """Wrap the agent's outbox so each committed event is timed (after the commit returns)."""
    commits: list[tuple[float, Event]] = []
    outbox = agent.outbox  # type: ignore[attr-defined]
    append_many = outbox.append_many

    def timed(messages: list[tuple[MessageKind, object]]) -> object:
        result = append_many(messages)
        at = time.perf_counter()
        commits.extend((at, body) for kind, body in messages if kind is MessageKind.EVENT)  # type: ignore[misc]
        return result

    outbox.append_many = timed
    return commits


def publisher_thread(port: int, count: int, sends: list[float], done: threading.Event) -> None:
    """Publish person-in-zone on, off, on ... every 150 ms from a loop of its own."""

    async def run() -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            for i in range(2 * count):
                person = i % 2 == 0
                payload = orjson.dumps(
                    {"zone": {"person": person}, "water": {"level_cm": 118.0, "alarm": False},
                     "camera": {"online": True}}
                )  # fmt: skip
                sends.append(time.perf_counter())
                await client.publish("school/pool-1/status", payload, qos=0)
                await asyncio.sleep(0.15)
        done.set()

    asyncio.run(run())


async def mqtt_to_event(broker: MosquittoBroker, tmp: Path, count: int) -> None:
    devices = [
        Dev("pool-1", "pool_zone_monitor", "pool", poll_s=3600),  # the thread publishes instead
        Dev("pool-relay", "eletechsup_8ch_relay", "pool", poll_s=1.0),
    ]
    actions = [{
        "id": "pool_siren", "when": {"rule": "person_in_water_zone"},
        "run": {"device": "pool-relay", "action": "relay_3_on"},
        "on_clear": {"device": "pool-relay", "action": "relay_3_off"},
    }]  # fmt: skip
    rules = [{"rule": {"id": "person_in_water_zone", **NO_FLAPPING}}]
    async with school(broker, tmp / "mqtt", devices, rules=rules, local_actions=actions) as s:
        commits = record_event_commits(s.agent)
        await asyncio.sleep(1.0)
        sends: list[float] = []
        done = threading.Event()
        thread = threading.Thread(
            target=publisher_thread, args=(broker.site_port, count, sends, done), daemon=True
        )
        thread.start()
        await asyncio.to_thread(done.wait)
        await asyncio.sleep(0.5)
        issued = [at for what, at in s.agent.local_actions.issued if what.endswith("relay_3_on")]
    pool = [(at, e) for at, e in commits if e.device == "pool-1"]
    raises = [at for at, e in pool if e.state is EventState.RAISED]
    clears = [at for at, e in pool if e.state is EventState.CLEARED]
    to_event = [1000 * (c - s) for c, s in zip(raises, sends[0::2], strict=True)]
    to_event += [1000 * (c - s) for c, s in zip(clears, sends[1::2], strict=True)]
    to_action = [1000 * (a - s) for a, s in zip(issued, sends[0::2], strict=True)]
    line("MQTT value -> event committed (raise + clear)", to_event, "target p99 < 50 ms")
    line("MQTT value -> local action issued (relay on)", to_action, "target p99 < 50 ms")


async def polled_to_event(broker: MosquittoBroker, tmp: Path, count: int) -> None:
    poll_s = 0.5
    devices = [Dev("safety-io", "eletechsup_8di_safety_inputs", "gate", poll_s=poll_s)]
    rules = [{"rule": {"id": "fire_alarm", **NO_FLAPPING}}]
    async with school(broker, tmp / "polled", devices, rules=rules) as s:
        commits = record_event_commits(s.agent)
        await asyncio.sleep(1.0)
        changes: list[float] = []
        rng = random.Random(7)
        for i in range(2 * count):
            await asyncio.sleep(poll_s + rng.uniform(0.05, poll_s))  # any phase of the cycle
            changes.append(time.perf_counter())
            s.set("safety-io", smoke_fire_alarm=1.0 if i % 2 == 0 else 0.0)
        await asyncio.sleep(2 * poll_s)
    fire = [at for at, e in commits if e.rule == "fire_alarm"]
    latency = [1000 * (c - v) for c, v in zip(fire, changes, strict=True)]
    line(
        f"polled value ({poll_s:g} s poll) -> event committed",
        latency,
        f"beyond the poll period: max {max(latency) - 1000 * poll_s:+.1f} ms (target <= 50 ms)",
    )


async def command_round_trip(
    broker: MosquittoBroker, tmp: Path, count: int, device: Dev, point: str, label: str
) -> None:
    place = tmp / f"cmd-{device.id}"  # a hub database and an agent of its own
    place.mkdir()
    with running_hub(broker, place) as hub:
        async with school(broker, place, [device], hub=hub):
            await asyncio.sleep(2.0)  # the agent's heartbeat registers the device at the hub
            times = []
            locked = 0  # POSTs the hub answered with SQLite "database is locked" (retried)
            for i in range(count):
                started = time.perf_counter()
                while True:
                    try:
                        response = hub.api.post(
                            f"/api/v1/devices/{device.id}/commands",
                            params={"gateway_id": GATEWAY},
                            json={"point": point, "value": 50 + i},
                        )
                        break
                    except OperationalError:
                        locked += 1
                command_id = response.json()["id"]
                while True:
                    status = hub.get(f"/api/v1/commands/{command_id}")
                    if status["status"] in ("succeeded", "failed", "expired"):
                        break
                    await asyncio.sleep(0.005)
                times.append(1000 * (time.perf_counter() - started))
                assert status["status"] == "succeeded", status
                assert status["readback"] == 50 + i
    retried = f", {locked} POSTs retried: hub SQLite locked" if locked else ""
    line(f"hub command round trip ({label})", times, f"POST -> GET succeeded{retried}")


async def mqtt_set_reference(broker: MosquittoBroker, count: int) -> None:
    """The floor under the MQTT round trip: a plain client's set command -> the state report."""
    port = broker.site_port or 0
    device = SimulatedDevice("panel", PROFILES["tuya_ts0601_dimmer"], seed=1, fixed_values={})
    publisher = MqttDevicePublisher(
        device, topic="zigbee2mqtt/panel", host=broker.host, port=port, clock=SimClock(),
        interval_s=60,
    )  # fmt: skip
    publisher.start()
    times = []
    try:
        async with aiomqtt.Client(broker.host, port) as client:
            await client.subscribe("zigbee2mqtt/panel", qos=1)
            messages = aiomqtt_messages(client)
            await anext(messages)  # the state at connect: the device takes commands now
            for i in range(count):
                started = time.perf_counter()
                await client.publish("zigbee2mqtt/panel/set", b'{"brightness": %d}' % i, qos=1)
                while orjson.loads((await anext(messages)).payload).get("brightness") != i:  # type: ignore[arg-type]
                    pass
                times.append(1000 * (time.perf_counter() - started))
    finally:
        await publisher.stop()
    line("reference: plain client set -> state report", times, "site broker + simulator")


async def aiomqtt_messages(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    async for message in client.messages:
        yield message


def outbox_commit_reference(tmp: Path, count: int) -> None:
    """The floor under "event committed": one event appended to an outbox (fsync per commit)."""
    event = Event(
        rule="bench", device="d", point="p", state=EventState.RAISED, severity=Severity.I,
        value=1, threshold=1, standard="bench", at=datetime.now(UTC),
    )  # fmt: skip
    times = []
    with Outbox(tmp / "reference.sqlite3") as outbox:
        for _ in range(count):
            started = time.perf_counter()
            outbox.append(MessageKind.EVENT, event)
            times.append(1000 * (time.perf_counter() - started))
    line("reference: outbox append of one event alone", times, "SQLite WAL, synchronous=FULL")


async def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"command: bench/safety_latency.py {count}")
    print(f"machine: {platform.platform()} | python {platform.python_version()} | "
          f"{os.cpu_count()} cores | load {os.getloadavg()[0]:.2f}")  # fmt: skip
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        broker = MosquittoBroker(tmp / "mosquitto", gateways=[GATEWAY], tls=True)
        broker.start()
        try:
            outbox_commit_reference(tmp, count)
            await mqtt_to_event(broker, tmp, count)
            await polled_to_event(broker, tmp, max(10, count // 5))
            rounds = max(10, count // 5)
            dali = Dev("room-101-lights", "arlight_dali_logic_lite", "room-101", poll_s=1.0)
            await command_round_trip(broker, tmp, rounds, dali, "group_0_set_level", "DALI group")
            await mqtt_set_reference(broker, rounds)
            zigbee = Dev("r101-panel", "tuya_ts0601_dimmer", "room-101", poll_s=10.0)
            await command_round_trip(broker, tmp, rounds, zigbee, "brightness", "Zigbee2MQTT dim")
        finally:
            broker.stop()
    print(f"process CPU {time.process_time() - cpu0:.1f} s | load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
