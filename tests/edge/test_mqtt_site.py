"""MqttSiteSource against the real Mosquitto site listener."""

from __future__ import annotations

import aiomqtt

from cloud_hub.broker import MosquittoBroker
from device_profiles.mqtt_payload import encode_mqtt_payload
from device_profiles.schema import Profile
from edge_agent.settings import DeviceConfig, SiteBrokerSettings
from edge_agent.sources.base import Reading
from edge_agent.sources.mqtt_site import MqttSiteSource
from tests.edge.support import wait_until

PROFILE = Profile.model_validate(
    {
        "id": "rec_controller",
        "name": "Recording controller",
        "domain": "recording",
        "protocol": "mqtt",
        "mqtt": {
            "topic_suffix": "status",
            "expected_interval_s": 0.2,
            "points": [
                {"name": "free_gb", "path": "storage.free_gb", "unit": "GB"},
                {"name": "online", "path": "encoder.online", "type": "bool"},
            ],
        },
    }
)
DEVICE = DeviceConfig.model_validate(
    {"id": "rec-1", "profile": "rec_controller", "room": "rec-1", "mqtt": {"topic": "school/rec-1"}}
)


async def test_payloads_become_readings_and_malformed_ones_are_counted(
    mosquitto_broker: MosquittoBroker,
) -> None:
    source = MqttSiteSource(
        SiteBrokerSettings(host=mosquitto_broker.host, port=mosquitto_broker.site_port),
        [(DEVICE, PROFILE)],
    )
    readings: list[Reading] = []
    await source.start(readings.append)
    await wait_until(lambda: source.connected)
    assert PROFILE.mqtt is not None
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port) as device:
        await device.publish("school/rec-1/status", b"{not json", qos=1)
        await device.publish("school/rec-1/status", b"[1, 2]", qos=1)
        payload = encode_mqtt_payload(PROFILE.mqtt, {"free_gb": 812.5, "online": 1})
        await device.publish("school/rec-1/status", payload, qos=1)
        await device.publish("school/other/status", payload, qos=1)
    await wait_until(lambda: bool(readings))
    (state,) = source.device_states()
    await source.stop()

    assert [(r.device, r.values) for r in readings] == [("rec-1", {"free_gb": 812.5, "online": 1})]
    assert source.malformed == 2
    assert state.status.value == "online"


async def test_device_goes_offline_after_three_silent_intervals(
    mosquitto_broker: MosquittoBroker,
) -> None:
    now = [1_000.0]  # the source's clock, moved by hand: silence is measured, not slept
    source = MqttSiteSource(
        SiteBrokerSettings(host=mosquitto_broker.host, port=mosquitto_broker.site_port),
        [(DEVICE, PROFILE)],
        clock=lambda: now[0],
    )
    await source.start(lambda r: None)
    assert PROFILE.mqtt is not None
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port) as device:
        await wait_until(lambda: source.connected)
        await device.publish(
            "school/rec-1/status", encode_mqtt_payload(PROFILE.mqtt, {"free_gb": 1}), qos=1
        )
    (state,) = source.device_states()
    await wait_until(lambda: state.available is True)
    now[0] += 0.3
    source.check_silence()
    still_online = state.available
    now[0] += 0.5
    source.check_silence()
    await source.stop()

    assert still_online is True, "0.3 s of silence is less than 3 x 0.2 s"
    assert state.available is False
    assert "no message on school/rec-1/status" in state.last_error
