"""A simulated Zigbee2MQTT dimmer takes set commands on ``<topic>/set`` the way Zigbee2MQTT does:
it applies the writable points a command names and publishes its new state at once; on demand it
ignores commands, applies a wrong value, or is offline and silent. (Real Mosquitto.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest

from cloud_hub.broker import MosquittoBroker
from device_profiles.mqtt_payload import decode_mqtt_payload
from device_profiles.schema import Profile
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.mqtt_device import MqttDevicePublisher
from tests.sim.support import HandClock, site_port

DIMMER = "tuya_ts0601_dimmer"
TOPIC = "zigbee2mqtt/r101-panel"


@pytest.fixture
def dimmer(profiles: dict[str, Profile]) -> SimulatedDevice:
    fixed = {"state": 1, "brightness": 200, "linkquality": 96}
    return SimulatedDevice("r101-panel", profiles[DIMMER], seed=1, fixed_values=fixed)


class Site:
    """A client on the site listener that sends commands and keeps every state the device sent."""

    def __init__(self, client: aiomqtt.Client, device: SimulatedDevice) -> None:
        self.client = client
        self.device = device
        self.states: list[dict[str, float]] = []

    async def send(self, payload: bytes) -> None:
        await self.client.publish(f"{TOPIC}/set", payload, qos=1)

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.02)


@pytest.fixture
async def site(
    mosquitto_broker: MosquittoBroker, dimmer: SimulatedDevice
) -> AsyncIterator[tuple[Site, MqttDevicePublisher]]:
    mapping = dimmer.profile.mqtt
    assert mapping is not None
    # a long interval: a state published soon after a command is the answer to it
    publisher = MqttDevicePublisher(
        dimmer, topic=TOPIC, host=mosquitto_broker.host, port=site_port(mosquitto_broker),
        clock=HandClock(), interval_s=30.0, reconnect_s=0.1,
    )  # fmt: skip
    async with aiomqtt.Client(mosquitto_broker.host, site_port(mosquitto_broker)) as client:
        await client.subscribe(TOPIC, qos=1)
        site = Site(client, dimmer)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                site.states.append(decode_mqtt_payload(mapping, message.payload).values)

        task = asyncio.create_task(collect())
        publisher.start()
        await site.wait_for(lambda: len(site.states) == 1)  # the state at connect (subscribed)
        try:
            yield site, publisher
        finally:
            await publisher.stop()
            task.cancel()


async def test_a_set_command_is_applied_and_the_new_state_published_at_once(
    site: tuple[Site, MqttDevicePublisher],
) -> None:
    client, publisher = site
    await client.send(b'{"brightness": 80}')
    await client.wait_for(lambda: len(client.states) == 2)
    await client.send(b'{"state": "OFF"}')
    await client.wait_for(lambda: len(client.states) == 3)

    assert [(s["state"], s["brightness"]) for s in client.states] == [(1, 200), (1, 80), (0, 80)]
    assert publisher.commands == 2


async def test_read_only_points_and_unreadable_values_in_a_command_are_ignored(
    site: tuple[Site, MqttDevicePublisher],
) -> None:
    client, publisher = site
    await client.send(b'{"linkquality": 5, "state": "TOGGLE", "brightness": 30}')
    await client.wait_for(lambda: len(client.states) == 2)
    await client.send(b"not json")
    await client.wait_for(lambda: publisher.malformed_commands == 1)

    assert client.states[-1] == {"state": 1, "brightness": 30, "linkquality": 96}
    assert len(client.states) == 2  # a malformed command changes nothing and is not answered


@pytest.mark.parametrize(
    ("fault", "expected"),
    [(FaultKind.IGNORE_WRITES, (1, 200)), (FaultKind.WRONG_VALUE, (0, 40))],
)
async def test_faulty_devices_answer_a_command_with_the_wrong_state(
    site: tuple[Site, MqttDevicePublisher], fault: FaultKind, expected: tuple[int, int]
) -> None:
    client, publisher = site
    client.device.set_fault(Fault(fault))
    await client.send(b'{"state": "ON"}')
    await client.wait_for(lambda: len(client.states) == 2)
    await client.send(b'{"brightness": 80}')
    await client.wait_for(lambda: len(client.states) == 3)

    assert (client.states[-1]["state"], client.states[-1]["brightness"]) == expected
    assert publisher.commands == 2


async def test_an_offline_device_takes_no_command_and_says_nothing(
    site: tuple[Site, MqttDevicePublisher],
) -> None:
    client, publisher = site
    client.device.set_fault(Fault(FaultKind.OFFLINE))
    await client.send(b'{"brightness": 10}')
    await client.wait_for(lambda: publisher.commands == 1)
    client.device.set_fault(None)
    await client.send(b'{"state": "OFF"}')
    await client.wait_for(lambda: len(client.states) == 2)

    assert (client.states[-1]["state"], client.states[-1]["brightness"]) == (0, 200)
