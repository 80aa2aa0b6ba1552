"""The recording-room controller publishes decodable JSON on the site broker, and reconnects."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from cloud_hub.broker import MosquittoBroker
from device_profiles.errors import PayloadError
from device_profiles.mqtt_payload import decode_mqtt_payload
from device_profiles.schema import Profile
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.mqtt_device import MqttDevicePublisher
from tests.sim.support import HandClock, site_port
from tests.waiting import eventually

REC = "recording_room_controller"
TOPIC = "site/d1-s01/rec1-ctrl"
FIXED = {
    "recording_state": 1,
    "encoder_online": 1,
    "storage_free_gb": 812.5,
    "storage_free_pct": 41.0,
    "live_stream_state": 1,
    "live_bitrate": 4000,
    "tracking_host_online": 1,
    "camera_teacher_online": 1,
    "camera_student_online": 0,
    "camera_board_online": 1,
    "audio_level": -18.5,
}


async def collect(client: aiomqtt.Client, count: int, wait_s: float = 5.0) -> list[aiomqtt.Message]:
    messages: list[aiomqtt.Message] = []

    async def take() -> None:
        async for message in client.messages:
            messages.append(message)
            if len(messages) >= count:
                return

    await asyncio.wait_for(take(), wait_s)
    return messages


def publisher_for(
    device: SimulatedDevice, broker: MosquittoBroker, interval_s: float = 0.05
) -> MqttDevicePublisher:
    return MqttDevicePublisher(
        device,
        topic=TOPIC,
        host=broker.host,
        port=site_port(broker),
        clock=HandClock(),
        interval_s=interval_s,
        reconnect_s=0.1,
    )


@pytest.fixture
def recorder(profiles: dict[str, Profile]) -> SimulatedDevice:
    return SimulatedDevice("rec1-ctrl", profiles[REC], seed=1, fixed_values=FIXED)


async def test_published_payloads_decode_to_the_fixed_values(
    mosquitto_broker: MosquittoBroker, recorder: SimulatedDevice
) -> None:
    publisher = publisher_for(recorder, mosquitto_broker)
    async with aiomqtt.Client(mosquitto_broker.host, site_port(mosquitto_broker)) as client:
        await client.subscribe(f"{TOPIC}/#", qos=1)
        publisher.start()
        try:
            messages = await collect(client, 4)
        finally:
            await publisher.stop()
    assert recorder.profile.mqtt is not None
    for message in messages:
        assert message.topic.value == f"{TOPIC}/status"
        assert isinstance(message.payload, bytes)
        decoded = decode_mqtt_payload(recorder.profile.mqtt, message.payload)
        assert decoded.values == pytest.approx(FIXED)
    # the 4th payload is sent only after the broker acknowledged the 3rd
    assert publisher.published >= 3


async def test_signal_payloads_report_recording_during_a_scheduled_lesson(
    mosquitto_broker: MosquittoBroker, profiles: dict[str, Profile]
) -> None:
    device = SimulatedDevice("rec1-ctrl", profiles[REC], seed=1)
    publisher = publisher_for(device, mosquitto_broker)
    payload = publisher.payload()
    mapping = profiles[REC].mqtt
    assert payload is not None and mapping is not None
    values = decode_mqtt_payload(mapping, payload).values
    assert set(values) == set(profiles[REC].point_names)
    assert values["recording_state"] in (0, 1) and values["storage_free_gb"] > 0


async def test_faults_silence_garble_or_flag_the_controller(
    mosquitto_broker: MosquittoBroker, recorder: SimulatedDevice
) -> None:
    publisher = publisher_for(recorder, mosquitto_broker)
    mapping = recorder.profile.mqtt
    assert mapping is not None
    recorder.set_fault(Fault(FaultKind.OFFLINE))
    assert publisher.payload() is None
    recorder.set_fault(Fault(FaultKind.GARBAGE))
    garbage = publisher.payload()
    assert garbage is not None
    with pytest.raises(PayloadError):
        decode_mqtt_payload(mapping, garbage)
    recorder.set_fault(Fault(FaultKind.EXCEPTION))
    error = publisher.payload()
    assert error is not None
    assert decode_mqtt_payload(mapping, error).values["recording_state"] == 3


async def test_an_offline_controller_publishes_nothing(
    mosquitto_broker: MosquittoBroker, recorder: SimulatedDevice
) -> None:
    recorder.set_fault(Fault(FaultKind.OFFLINE))
    publisher = publisher_for(recorder, mosquitto_broker)
    publisher.start()
    try:
        await eventually(lambda: publisher.connects == 1, what="the controller connects")
        await asyncio.sleep(0.4)  # eight of its publish intervals
        assert publisher.published == 0
    finally:
        await publisher.stop()


async def test_publisher_reconnects_after_the_site_broker_restarts(
    mosquitto_broker: MosquittoBroker, recorder: SimulatedDevice
) -> None:
    publisher = publisher_for(recorder, mosquitto_broker)
    publisher.start()
    try:
        await eventually(lambda: publisher.published > 0, what="a first publish")
        before = publisher.published
        await asyncio.to_thread(mosquitto_broker.restart)
        async with aiomqtt.Client(mosquitto_broker.host, site_port(mosquitto_broker)) as client:
            await client.subscribe(f"{TOPIC}/#", qos=1)
            await collect(client, 2, wait_s=15)  # its reconnect back-off, on a loaded machine
        assert publisher.connects >= 2
        assert publisher.published > before
    finally:
        await publisher.stop()
