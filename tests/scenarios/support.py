"""What the safety scenarios share: one school of simulated devices (a real pymodbus server, real
MQTT publishers on the site listener), the real agent, and the real hub (ingest worker, command
publisher and REST API on SQLite) around one real Mosquitto.

Time of day: the agent runs on the real clock; a scenario that needs "after hours" or "a lesson"
writes a school calendar whose time zone puts the present moment at the wanted local hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from fastapi.testclient import TestClient

from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.messages import Command, Event, MessageKind, SiteIdentity
from campus_protocol.topics import downlink_topic, hub_subscription, parse_topic
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.broker import MosquittoBroker
from cloud_hub.settings import BrokerSettings, HubSettings, TlsSettings
from device_profiles.loader import load_profiles
from device_profiles.schema import Profile
from edge_agent.app import Agent
from edge_agent.settings import AgentSettings
from simulators.devices import SimulatedDevice
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock
from tests.auth_support import bearer, make_user
from tests.broker_support import hub_port_client
from tests.waiting import DEADLINE_S
from tests.waiting import eventually as eventually

GATEWAY = "gw-1"
SITE = SiteIdentity(city_id="c1", district_id="d1", school_id="s1", school_name="No. 1 School")
PROFILES: dict[str, Profile] = load_profiles()


@dataclass(frozen=True)
class Dev:
    """A simulated device of the scenario school: profile, room and the values it starts with."""

    id: str
    profile: str
    room: str
    values: dict[str, float] = field(default_factory=dict)
    poll_s: float = 0.1  # Modbus poll interval (MQTT devices publish every poll_s too)
    confirm_s: float | None = None  # MQTT: how long a set command waits for its state report
    grouped: bool = False  # MQTT: not configured, found through the school's ``mqtt_groups``


def zone_at_local_hour(hour: int) -> str:
    """A fixed-offset time zone in which it is now ``hour`` o'clock (give or take 30 min)."""
    offset = round(hour - (time.time() % 86400) / 3600)
    offset = (offset + 12) % 24 - 12  # -12 .. +11 hours
    return f"Etc/GMT{-offset:+d}"  # the Etc zones' sign is inverted


def calendar(hour: int, **fields: Any) -> dict[str, Any]:
    """A calendar where now is ``hour`` local on a school day (every day is one)."""
    return {
        "timezone": zone_at_local_hour(hour),
        "school_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        **fields,
    }


class Hub:
    """The hub in its own thread (TestClient runs the app's lifespan: ingest + commands)."""

    def __init__(self, api: TestClient) -> None:
        self.api = api

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def alerts(self, **params: Any) -> list[tuple[str, str, str, str]]:
        """(device, rule, severity, state) of the hub's alerts, oldest first."""
        rows = self.get("/api/v1/alerts", limit=1000, **params)["data"]
        rows.sort(key=lambda a: (a["opened_at"], a["id"]))
        return [(a["device"], a["rule"], a["severity"], a["state"]) for a in rows]


@contextlib.contextmanager
def running_hub(broker: MosquittoBroker, tmp_path: Path) -> Iterator[Hub]:
    settings = HubSettings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        broker=BrokerSettings(
            host=broker.host,
            port=broker.port,
            password=broker.hub_password,
            tls=TlsSettings(ca_file=broker.ca_file),
        ),
        development=True,
    )
    with TestClient(create_app(settings, run_ingest=True)) as api:
        token = make_user(
            api.app.state.sessions,  # type: ignore[attr-defined]
            "city-ops",
            Role.CITY_ADMIN,
            f"city:{SITE.city_id}",
            now=datetime.now(UTC),
        )
        api.headers.update(bearer(token))
        yield Hub(api)


@dataclass
class School:
    agent: Agent
    devices: dict[str, SimulatedDevice]
    hub: Hub | None

    def value(self, device: str, point: str) -> float:
        """What a simulated device holds now (after the writes it received)."""
        return self.devices[device].read(datetime.now())[point]

    def set(self, device: str, **values: float) -> None:
        """Change what a simulated device reports (takes effect at its next poll or publish)."""
        self.devices[device].fixed_values.update(values)

    def seen(self, device: str, point: str) -> float | None:
        """The point's value in the agent's newest reading of the device (None before one)."""
        reading = self.agent.latest.get(device)
        return None if reading is None else reading.values.get(point)


@contextlib.asynccontextmanager
async def school(
    broker: MosquittoBroker,
    tmp_path: Path,
    devices: list[Dev],
    *,
    hub: Hub | None = None,
    calendar: dict[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
    local_actions: list[dict[str, Any]] | None = None,
    window_s: float = 0.5,
    site: MosquittoBroker | None = None,
    mqtt_groups: list[dict[str, Any]] | None = None,
) -> AsyncIterator[School]:
    """Serve ``devices``, run the agent against them; stop everything afterwards. MQTT devices
    use ``broker``'s site listener, or ``site``'s (a school broker that outlives the hub's), and
    publish on ``school/<id>`` (what ``mqtt_groups`` patterns find the ``grouped`` ones by)."""
    site_port = (site or broker).site_port or 0
    clock = SimClock(start=datetime.now(UTC).replace(tzinfo=None))
    simulated = {
        d.id: SimulatedDevice(d.id, PROFILES[d.profile], seed=7, fixed_values=dict(d.values))
        for d in devices
    }
    modbus_devices = [d for d in devices if PROFILES[d.profile].protocol == "modbus"]
    server = ModbusSimServer(
        [ServedUnit(unit, simulated[d.id]) for unit, d in enumerate(modbus_devices, start=1)],
        clock=clock,
    )
    await server.start()
    publishers = [
        MqttDevicePublisher(
            simulated[d.id],
            topic=f"school/{d.id}",
            host=broker.host,
            port=site_port,
            clock=clock,
            interval_s=d.poll_s,
        )
        for d in devices
        if PROFILES[d.profile].protocol == "mqtt"
    ]
    for publisher in publishers:
        publisher.start()
    config: dict[str, Any] = {
        "gateway": {"id": GATEWAY, "site": SITE.model_dump()},
        "hub": {
            "host": broker.host,
            "port": broker.port,
            "password": broker.password_for(GATEWAY),
            "tls": {"ca_file": str(broker.ca_file)},
            "keepalive_s": 5,  # notice a dead broker within seconds
        },
        "site_broker": {"host": broker.host, "port": site_port},
        "data_dir": str(tmp_path / "agent"),
        "window_s": window_s,
        "heartbeat_s": 1.0,
        "devices": [
            _device_config(d, server.port, unit) for unit, d in _units(devices) if not d.grouped
        ],
        "mqtt_groups": mqtt_groups or [],
        "rules": rules or [],
        "local_actions": local_actions or [],
    }
    if calendar is not None:
        path = tmp_path / "calendar.yaml"
        path.write_text(yaml.safe_dump(calendar), encoding="utf-8")
        config["calendar_file"] = str(path)
    agent = Agent(AgentSettings.model_validate(config), PROFILES, stop_grace_s=2.0)
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.ready.wait(), DEADLINE_S)
    try:
        yield School(agent=agent, devices=simulated, hub=hub)
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, DEADLINE_S)
        for publisher in publishers:
            await publisher.stop()
        await server.stop()


def _units(devices: list[Dev]) -> Iterator[tuple[int, Dev]]:
    unit = 0
    for device in devices:
        if PROFILES[device.profile].protocol == "modbus":
            unit += 1
            yield unit, device
        else:
            yield 0, device


def _device_config(device: Dev, port: int, unit: int) -> dict[str, Any]:
    config: dict[str, Any] = {"id": device.id, "profile": device.profile, "room": device.room}
    if unit:
        config["modbus"] = {
            "host": "127.0.0.1",
            "port": port,
            "unit_id": unit,
            "poll_interval_s": device.poll_s,
        }
    else:
        config["mqtt"] = {"topic": f"school/{device.id}", "confirm_timeout_s": device.confirm_s}
    return config


def events(received: list[Envelope]) -> list[tuple[str, str, str, str]]:
    """(device, rule, state or "flapping", severity) of every event the hub broker carried."""
    return [
        (
            e.body.device,
            e.body.rule,
            "flapping" if e.body.flapping else e.body.state.value,
            e.body.severity.value,
        )
        for e in received
        if isinstance(e.body, Event)
    ]


@dataclass
class HubLink:
    """The hub's one connection (client id = username): what it received, and a way to send."""

    client: aiomqtt.Client
    received: list[Envelope]

    async def send(self, payload: bytes, node: str = GATEWAY) -> None:
        await self.client.publish(downlink_topic(node, MessageKind.CMD), payload, qos=1)

    async def command(self, body: Command, node: str = GATEWAY) -> None:
        await self.send(codec.encode(Envelope.wrap(node=node, epoch="hub", seq=1, body=body)), node)

    def agent_listening(self) -> bool:
        """The agent's uplink sent something past its online state: it drains the outbox, which
        it starts only once its command subscription is acknowledged."""
        return any(e.kind is not MessageKind.STATE for e in self.received)


@contextlib.asynccontextmanager
async def hub_link(broker: MosquittoBroker) -> AsyncIterator[HubLink]:
    """Subscribe to every uplink as the hub and publish downlinks on the same connection (the
    broker allows the hub user one connection at a time)."""
    received: list[Envelope] = []
    async with hub_port_client(broker, broker.hub_username) as client:
        await client.subscribe(hub_subscription(), qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                received.append(codec.decode(payload, topic=parse_topic(str(message.topic))))

        task = asyncio.create_task(collect())
        try:
            yield HubLink(client, received)
        finally:
            task.cancel()
