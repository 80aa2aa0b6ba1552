"""One profile serving many MQTT devices through a topic pattern, JSON paths and unit
conversions; against the real Mosquitto site listener."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import orjson
import pytest

from cloud_hub.broker import MosquittoBroker
from device_profiles.errors import ProfileError
from device_profiles.loader import load_profile
from device_profiles.schema import Profile
from edge_agent.settings import MqttDeviceGroup, SiteBrokerSettings
from edge_agent.sources.base import Reading
from edge_agent.sources.mqtt_site import MqttSiteSource
from tests.edge.support import wait_until

SENSOR = Profile.model_validate(
    {
        "id": "th_sensor",
        "name": "Temperature and humidity sensor that reports in Fahrenheit",
        "domain": "environment",
        "protocol": "mqtt",
        "mqtt": {
            "points": [
                {
                    "name": "temperature",
                    "path": "$.readings[0].value",
                    "unit": "°C",
                    "source_unit": "°F",
                },
                {"name": "humidity", "path": "readings[1].value", "unit": "%"},
                {"name": "battery", "path": "status.battery_mv", "unit": "V", "source_unit": "mV"},
            ],
        },
    }
)


def payload(fahrenheit: float, humidity: float = 45.0) -> bytes:
    return orjson.dumps(
        {"readings": [{"value": fahrenheit}, {"value": humidity}], "status": {"battery_mv": 3010}}
    )


def source(
    group: dict[str, object],
    found: list[tuple[str, str, str]],
    broker: SiteBrokerSettings | None = None,
) -> MqttSiteSource:
    return MqttSiteSource(
        broker or SiteBrokerSettings(),
        [],
        groups=[(MqttDeviceGroup.model_validate({"profile": "th_sensor", **group}), SENSOR)],
        on_new_device=lambda device, profile, room: found.append((device, profile.id, room)),
    )


def test_the_device_and_room_come_from_the_topic_and_values_are_converted() -> None:
    found: list[tuple[str, str, str]] = []
    site = source({"topic": "school/{room}/{device}/telemetry", "id_prefix": "th-"}, found)
    readings: list[Reading] = []

    site.handle("school/r101/a1/telemetry", payload(77.0), readings.append)
    site.handle("school/r101/a1/telemetry", payload(68.0), readings.append)
    site.handle("school/lab2/b7/telemetry", payload(32.0, 50.0), readings.append)

    assert found == [("th-a1", "th_sensor", "r101"), ("th-b7", "th_sensor", "lab2")]
    assert [r.device for r in readings] == ["th-a1", "th-a1", "th-b7"]
    assert readings[0].values == pytest.approx(
        {"temperature": 25.0, "humidity": 45.0, "battery": 3.01}
    )
    assert readings[2].values["temperature"] == pytest.approx(0.0)
    assert {s.device: s.room for s in site.device_states()} == {"th-a1": "r101", "th-b7": "lab2"}
    assert site.topics == ["school/+/+/telemetry"]


def test_invalid_device_levels_and_devices_past_the_limit_are_counted_not_added() -> None:
    found: list[tuple[str, str, str]] = []
    site = source({"topic": "sensors/{device}/data", "room": "hall", "max_devices": 2}, found)
    readings: list[Reading] = []

    for device in ["s1", "-bad", "s2", "s3", "s1"]:
        site.handle(f"sensors/{device}/data", payload(50.0), readings.append)
    site.handle("sensors/s1/data", b"{oops", readings.append)

    assert [d for d, _, _ in found] == ["s1", "s2"]
    assert [r.device for r in readings] == ["s1", "s2", "s1"]
    assert site.malformed == 1


@pytest.mark.parametrize(
    ("group", "says"),
    [
        ({"topic": "sensors/+/data", "room": "hall"}, "topic: needs one {device} level"),
        ({"topic": "sensors/{device}/data"}, "room: give a fixed room or one {room} level"),
        ({"topic": "sensors/{device}/#", "room": "hall"}, "String should match pattern"),
        ({"topic": "s/x{device}/d", "room": "hall"}, "topic: needs one {device} level"),
    ],
)
def test_a_bad_group_pattern_is_refused_naming_the_field(group: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("{", r"\{").replace("}", r"\}")):
        MqttDeviceGroup.model_validate({"profile": "th_sensor", **group})


def test_an_unknown_unit_conversion_is_a_profile_error(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "id: odd\nname: odd\ndomain: lab\nprotocol: mqtt\nmqtt:\n  points:\n"
        "    - {name: t, path: t, unit: °C, source_unit: furlongs}\n"
    )
    with pytest.raises(ProfileError, match=r"source_unit: no conversion from 'furlongs' to '°C'"):
        load_profile(tmp_path / "p.yaml")


async def test_devices_publishing_on_the_pattern_become_readings_over_a_real_broker(
    mosquitto_broker: MosquittoBroker,
) -> None:
    found: list[tuple[str, str, str]] = []
    site = source(
        {"topic": "sensors/{device}/data", "room": "hall"},
        found,
        SiteBrokerSettings(host=mosquitto_broker.host, port=mosquitto_broker.site_port),
    )
    readings: list[Reading] = []
    await site.start(readings.append)
    await wait_until(lambda: site.connected)
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port) as sensors:
        for device in ("t1", "t2", "t3"):
            await sensors.publish(f"sensors/{device}/data", payload(212.0), qos=1)
    await wait_until(lambda: len(readings) == 3)
    await site.stop()

    assert sorted(r.device for r in readings) == ["t1", "t2", "t3"]
    assert all(r.values["temperature"] == pytest.approx(100.0) for r in readings)
