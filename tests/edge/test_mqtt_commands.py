"""Hub commands reach MQTT devices: the agent publishes the set command QoS 1 on the site broker
and confirms it by the device's next state report (the MQTT read-back), retries a bounded number
of times, and refuses bad commands before anything is published. (Real Mosquitto with the
gateway ACL and a site listener, the real Zigbee2MQTT-style simulator, the real agent.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from campus_protocol.messages import Command, CommandResult
from cloud_hub.broker import MosquittoBroker
from device_profiles.loader import load_profiles
from edge_agent.app import Agent
from edge_agent.settings import MqttDeviceGroup, SiteBrokerSettings
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock
from tests.edge.support import wait_until
from tests.edge.test_agent import settings
from tests.scenarios.support import HubLink, hub_link

PROFILES = load_profiles()
DIMMER = "r101-panel"
TOPIC = f"zigbee2mqtt/{DIMMER}"


@dataclass
class Site:
    agent: Agent
    device: SimulatedDevice
    publisher: MqttDevicePublisher
    hub: HubLink

    async def command(self, command_id: str, name: str = "write", **args: Any) -> None:
        await self.hub.command(Command(id=command_id, name=name, device=DIMMER, args=args))

    def answers(self, command_id: str) -> list[CommandResult]:
        return [
            e.body
            for e in self.hub.received
            if isinstance(e.body, CommandResult) and e.body.id == command_id
        ]

    async def final(self, command_id: str, timeout_s: float = 10.0) -> CommandResult:
        def finished() -> bool:
            return any(a.status and a.status.value != "accepted" for a in self.answers(command_id))

        await wait_until(finished, timeout_s)
        return self.answers(command_id)[-1]

    def value(self, point: str) -> float:
        return self.device.read(datetime.now())[point]


@asynccontextmanager
async def site(
    broker: MosquittoBroker, tmp_path: Path, confirm_timeout_s: float = 0.5, *, group: bool = False
) -> AsyncIterator[Site]:
    """The dimmer configured under ``devices:``, or (``group``) found by ``mqtt_groups``."""
    fixed = {"state": 1, "brightness": 200, "linkquality": 96}
    device = SimulatedDevice(DIMMER, PROFILES["tuya_ts0601_dimmer"], seed=1, fixed_values=fixed)
    publisher = MqttDevicePublisher(
        device, topic=TOPIC, host=broker.host, port=broker.site_port or 0,
        clock=SimClock(), interval_s=0.2,
    )  # fmt: skip
    config = settings(broker, tmp_path, [{
        "id": DIMMER, "profile": "tuya_ts0601_dimmer", "room": "r101",
        "mqtt": {"topic": TOPIC, "confirm_timeout_s": confirm_timeout_s},
    }])  # fmt: skip
    site_broker = SiteBrokerSettings(host=broker.host, port=broker.site_port or 0)
    update: dict[str, Any] = {"site_broker": site_broker}
    if group:
        dimmers = {"profile": "tuya_ts0601_dimmer", "topic": "zigbee2mqtt/{device}", "room": "r101"}
        update.update(devices=[], mqtt_groups=[MqttDeviceGroup.model_validate(dimmers)])
    agent = Agent(config.model_copy(update=update), PROFILES)
    publisher.start()
    async with hub_link(broker) as hub:
        task = asyncio.create_task(agent.run())
        try:
            await wait_until(lambda: agent.uplink.connected, 10)
            await wait_until(lambda: DIMMER in agent.latest, 10)  # the site link is up
            await asyncio.sleep(0.3)  # the downlink subscription follows the uplink's connect
            yield Site(agent, device, publisher, hub)
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 20)
            await publisher.stop()


@pytest.mark.parametrize("group", [False, True], ids=["configured", "found-by-a-group"])
async def test_a_hub_command_dims_an_mqtt_dimmer_confirmed_by_its_state_report(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, group: bool
) -> None:
    async with site(mosquitto_broker, tmp_path, group=group) as s:
        await s.command("c-dim", point="brightness", value=80)
        await s.command("c-off", point="state", value=0)
        dimmed = await s.final("c-dim")
        off = await s.final("c-off")
        brightness, state = s.value("brightness"), s.value("state")
        commands_seen = s.publisher.commands

    assert [a.status.value for a in s.answers("c-dim")] == ["accepted", "succeeded"]  # type: ignore[union-attr]
    assert (dimmed.detail, dimmed.readback, dimmed.attempts) == ("written and read back", 80.0, 1)
    assert (off.status.value, off.readback) == ("succeeded", 0.0)  # type: ignore[union-attr]
    assert (brightness, state) == (80, 0)
    assert commands_seen == 2  # one set command each, in order on the device's lock


async def test_a_named_action_switches_the_dimmer_to_its_emergency_scene(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    async with site(mosquitto_broker, tmp_path) as s:
        s.device.fixed_values.update(state=0, brightness=10)
        await s.command("c-scene", name="action", action="emergency_scene")
        result = await s.final("c-scene")
        levels = (s.value("state"), s.value("brightness"))

    assert (result.status.value, result.target, result.readback) == (  # type: ignore[union-attr]
        "succeeded", "emergency_scene", 1.0,
    )  # fmt: skip
    assert levels == (1, 254)


@pytest.mark.parametrize("group", [False, True], ids=["configured", "found-by-a-group"])
async def test_bad_commands_to_an_mqtt_device_are_refused_before_anything_is_published(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, group: bool
) -> None:
    async with site(mosquitto_broker, tmp_path, group=group) as s:
        await s.command("c-read-only", point="linkquality", value=100)
        await s.command("c-out-of-range", point="brightness", value=300)
        await s.command("c-fraction", point="state", value=0.5)
        await s.command("c-not-a-number", point="brightness", value="dim")
        await s.command("c-no-action", name="action", action="disco")
        results = {key: await s.final(key) for key in (
            "c-read-only", "c-out-of-range", "c-fraction", "c-not-a-number", "c-no-action",
        )}  # fmt: skip
        published = s.publisher.commands

    answers = {key: (r.status.value, r.detail) for key, r in results.items()}  # type: ignore[union-attr]
    assert answers == {
        "c-read-only": ("rejected", "r101-panel: point 'linkquality' is read-only"),
        "c-out-of-range": ("rejected", "r101-panel.brightness: 300 outside 0..254"),
        "c-fraction": ("rejected", "r101-panel.state: 0.5 is not an integer"),
        "c-not-a-number": ("rejected", "r101-panel.brightness: value must be a number"),
        "c-no-action": (
            "rejected", "r101-panel: no action 'disco' (known: emergency_scene, all_off)",
        ),
    }  # fmt: skip
    assert published == 0


@pytest.mark.parametrize(
    ("fault", "detail", "readback", "brightness"),
    [
        (FaultKind.IGNORE_WRITES, "brightness reads 200.0 (wanted 80)", 200.0, 200),
        (FaultKind.WRONG_VALUE, "brightness reads 40.0 (wanted 80)", 40.0, 40),
        (FaultKind.OFFLINE, "read-back failed: no state report within 0.5 s", None, 200),
    ],
)
async def test_a_device_that_does_not_follow_fails_after_the_bounded_retries(
    mosquitto_broker: MosquittoBroker,
    tmp_path: Path,
    fault: FaultKind,
    detail: str,
    readback: float | None,
    brightness: float,
) -> None:
    async with site(mosquitto_broker, tmp_path) as s:
        s.device.set_fault(Fault(fault))
        await s.command("c-1", point="brightness", value=80)
        result = await s.final("c-1", timeout_s=20)
        received = s.publisher.commands
        s.device.set_fault(None)
        final_brightness = s.value("brightness")

    assert (result.status.value, result.attempts) == ("failed", 3)  # type: ignore[union-attr]
    assert (result.detail, result.readback) == (f"r101-panel: {detail}", readback)
    assert received == 3  # sent once per attempt, no more
    assert final_brightness == brightness


async def test_a_command_to_a_group_device_never_seen_is_refused_naming_the_device_and_why(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    async with site(mosquitto_broker, tmp_path, group=True) as s:
        unseen = Command(id="c-unseen", name="write", device="r102-panel",
                         args={"point": "brightness", "value": 80})  # fmt: skip
        await s.hub.command(unseen)
        result = await s.final("c-unseen")
        published = s.publisher.commands

    assert (result.status.value, result.ok) == ("rejected", False)  # type: ignore[union-attr]
    assert result.detail == (
        "no device 'r102-panel' on this gateway: not seen yet on MQTT group"
        " 'zigbee2mqtt/{device}', whose devices take commands once they have reported"
    )
    assert published == 0
