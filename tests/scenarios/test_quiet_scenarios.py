"""Safety scenarios that need no write: a cold-room door left open, a flapping sensor, lights
left on after hours, a recording room that does not start for its scheduled lesson. Real
Mosquitto, pymodbus simulators, MQTT publishers, agent and hub; every outcome counted exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cloud_hub.broker import MosquittoBroker
from tests.edge.support import hub_listener
from tests.scenarios.support import Dev, calendar, events, eventually, school


def levels(*arc: int) -> dict[str, float]:
    """The DALI gateway's cached group levels (a group is lit when its level is above 0)."""
    return {f"group_{g}_level": level for g, level in enumerate(arc)}


async def test_cold_room_door_left_open(mosquitto_broker: MosquittoBroker, tmp_path: Path) -> None:
    devices = [
        Dev("canteen-di", "eletechsup_8di_safety_inputs", "canteen"),
        Dev("cold-room-1", "eliwell_id974_cold_room", "canteen", {"temperature": 3.0}),
    ]
    rules = [  # the profiles' 10 and 15 minutes, shortened for the test
        {"match": {"device": "canteen-di"}, "rule": {"id": "cold_room_door_left_open", "for_s": 1}},
        {"match": {"device": "cold-room-1"}, "rule": {"id": "chilled_storage_warm", "for_s": 1.5}},
    ]
    async with (
        hub_listener(mosquitto_broker) as received,
        school(mosquitto_broker, tmp_path, devices, rules=rules) as s,
    ):
        s.set("canteen-di", cold_room_door=1)  # the door opens and stays open
        await eventually(lambda: len(events(received)) == 1)
        s.set("cold-room-1", temperature=8.4)  # the room warms past 8 °C
        await eventually(lambda: len(events(received)) == 2)
        s.set("canteen-di", cold_room_door=0)  # closed at last
        await eventually(lambda: len(events(received)) == 3)
        s.set("cold-room-1", temperature=7.4)  # below 8 - 0.5 hysteresis
        await eventually(lambda: len(events(received)) == 4)
        await asyncio.sleep(0.5)

    assert events(received) == [
        ("canteen-di", "cold_room_door_left_open", "raised", "III"),
        ("cold-room-1", "chilled_storage_warm", "raised", "II"),
        ("canteen-di", "cold_room_door_left_open", "cleared", "III"),
        ("cold-room-1", "chilled_storage_warm", "cleared", "II"),
    ]


async def test_a_flapping_sensor_raises_one_flapping_event_not_a_storm(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [Dev("lab-gas", "honeywell_midas_gas", "chem-lab", {"concentration": 0.0})]
    rules = [{"rule": {"id": "gas_level_1", "flapping": {"raises": 3, "window_s": 60}}}]
    async with (
        hub_listener(mosquitto_broker) as received,
        school(mosquitto_broker, tmp_path, devices, rules=rules) as s,
    ):
        for _ in range(10):  # a loose contact: 30 %LEL and 0 on alternate polls, 10 times
            for concentration in (30.0, 0.0):
                s.set("lab-gas", concentration=concentration)
                await eventually(lambda c=concentration: s.seen("lab-gas", "concentration") == c)
        await eventually(lambda: len(events(received)) == 5)
        await asyncio.sleep(0.5)  # and no more
        raised_at_hub = s.agent.events_enqueued

    assert events(received) == [
        ("lab-gas", "gas_level_1", "raised", "II"),
        ("lab-gas", "gas_level_1", "cleared", "II"),
        ("lab-gas", "gas_level_1", "raised", "II"),
        ("lab-gas", "gas_level_1", "cleared", "II"),
        ("lab-gas", "gas_level_1", "flapping", "II"),
    ]
    assert raised_at_hub == 5


async def test_lights_left_on_after_hours(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("room-101-lights", "arlight_dali_logic_lite", "room-101", levels(0, 0, 180, 0)),
        Dev("room-102-lights", "arlight_dali_logic_lite", "room-102", levels(0, 0, 0, 0)),
    ]
    rules = [{"rule": {"id": "lights_on_after_hours", "for_s": 1}}]  # 15 min in the profile
    async with (
        hub_listener(mosquitto_broker) as received,
        school(mosquitto_broker, tmp_path, devices, rules=rules, calendar=calendar(22)) as s,
    ):
        await eventually(lambda: len(events(received)) == 1)
        s.set("room-101-lights", **levels(0, 0, 0, 0))  # the caretaker switches them off
        await eventually(lambda: len(events(received)) == 2)

    assert events(received) == [
        ("room-101-lights", "lights_on_after_hours", "raised", "IV"),
        ("room-101-lights", "lights_on_after_hours", "cleared", "IV"),
    ]


async def test_lights_on_in_school_hours_raise_nothing(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("room-101-lights", "arlight_dali_logic_lite", "room-101", {"group_2_level": 180})
    ]
    rules = [{"rule": {"id": "lights_on_after_hours", "for_s": 0.5}}]
    async with (
        hub_listener(mosquitto_broker) as received,
        school(mosquitto_broker, tmp_path, devices, rules=rules, calendar=calendar(10)) as s,
    ):
        await eventually(lambda: s.seen("room-101-lights", "group_2_level") == 180)
        await asyncio.sleep(2.0)  # four times the rule's for_s, lights on all along
    assert events(received) == []


async def test_recording_room_not_recording_for_its_scheduled_lesson(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    devices = [
        Dev("rec-1", "recording_room_controller", "rec-101", {"recording_state": 0}, poll_s=0.2),
        Dev("rec-2", "recording_room_controller", "rec-102", {"recording_state": 0}, poll_s=0.2),
    ]
    today = calendar(12)  # a lesson at noon, recorded in rec-101 only
    today["lessons"] = [{"start": "11:00", "end": "13:00"}]
    today["recording"] = {"rec-101": {day: [1] for day in today["school_days"]}}
    rules = [{"rule": {"id": "recording_not_started", "for_s": 1}}]
    async with (
        hub_listener(mosquitto_broker) as received,
        school(mosquitto_broker, tmp_path, devices, rules=rules, calendar=today) as s,
    ):
        await eventually(lambda: len(events(received)) == 1)
        s.set("rec-1", recording_state=1)  # the teacher starts the recording
        await eventually(lambda: len(events(received)) == 2)

    assert events(received) == [
        ("rec-1", "recording_not_started", "raised", "III"),
        ("rec-1", "recording_not_started", "cleared", "III"),
    ]
