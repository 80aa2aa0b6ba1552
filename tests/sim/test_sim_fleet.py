"""A city planned from a seed runs as real servers and hands each agent a valid device list."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from pymodbus.client import AsyncModbusTcpClient

from campus_protocol.topics import NODE_ID_PATTERN
from cloud_hub.broker import MosquittoBroker
from device_profiles.mqtt_payload import decode_mqtt_payload
from device_profiles.registers import decode_block, plan_reads
from device_profiles.schema import Profile, RegisterTable
from edge_agent.settings import AgentSettings
from simulators.faults import Fault, FaultKind
from simulators.fleet import SCHOOL_DEVICES, plan_city, run_fleet
from tests.sim.support import HandClock, site_port


def test_the_same_seed_plans_the_same_city_and_another_seed_another() -> None:
    assert plan_city(3, 4, seed=7) == plan_city(3, 4, seed=7)
    names = [s.name for s in plan_city(3, 4, seed=7).schools]
    assert names != [s.name for s in plan_city(3, 4, seed=8).schools]


REC = "recording_room_controller"


def test_plan_ids_follow_the_naming_scheme() -> None:
    plan = plan_city(2, 3, seed=1)
    assert [d.id for d in plan.districts] == ["d1", "d2"]
    assert [s.id for s in plan.schools] == [f"d{d}-s0{s}" for d in (1, 2) for s in (1, 2, 3)]
    for school in plan.schools:
        assert school.gateway_id == f"gw-{school.id}"
        assert NODE_ID_PATTERN.fullmatch(school.gateway_id)
        assert [d.profile for d in school.devices] == [spec.profile for spec in SCHOOL_DEVICES]
        assert {d.room for d in school.devices} >= {"r101", "lab1", "rec1"}
        assert len({d.id for d in school.devices}) == len(school.devices)
    assert len({s.name for s in plan.schools}) == len(plan.schools)
    assert all(d.name.endswith("District") for d in plan.districts)
    assert len({d.seed for s in plan.schools for d in s.devices}) == 6 * len(SCHOOL_DEVICES)


def test_more_districts_than_names_still_get_unique_names() -> None:
    plan = plan_city(30, 1, seed=2)
    assert len({d.name for d in plan.districts}) == 30


async def read_device(port: int, unit: int, profile: Profile) -> dict[str, float]:
    assert profile.modbus is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    await client.connect()
    values: dict[str, float] = {}
    try:
        for block in plan_reads(profile.modbus):
            read = (
                client.read_holding_registers
                if block.table is RegisterTable.HOLDING
                else client.read_input_registers
            )
            response = await read(block.start, count=block.count, device_id=unit)
            assert not response.isError()
            values.update(decode_block(block, response.registers, profile.modbus).values)
    finally:
        client.close()
    return values


async def test_a_running_fleet_serves_every_device_its_agent_config_names(
    mosquitto_broker: MosquittoBroker, profiles: dict[str, Profile]
) -> None:
    plan = plan_city(1, 2, seed=3)
    fleet = await run_fleet(
        plan,
        site_broker_host=mosquitto_broker.host,
        site_broker_port=site_port(mosquitto_broker),
        clock=HandClock(),
        fixed_values={
            "sensecap_s_co2_03": {"co2": 999},
            "d1-s02/r101-air": {"co2": 1501},
            "recording_room_controller": {"storage_free_gb": 42.0},
        },
        mqtt_interval_s=0.05,
    )
    try:
        async with aiomqtt.Client(mosquitto_broker.host, site_port(mosquitto_broker)) as client:
            await client.subscribe("site/#", qos=1)
            for school in plan.schools:
                devices = fleet.agent_device_configs(school.id)
                settings = AgentSettings(
                    gateway={"id": school.gateway_id, "site": plan.site_identity(school.id)},
                    development=True,
                    devices=devices,
                )
                assert [d.id for d in settings.devices] == [d.id for d in school.devices]
                for device in settings.devices:
                    profile = profiles[device.profile]
                    if device.modbus is not None:
                        assert device.modbus.unit_id is not None
                        values = await read_device(
                            device.modbus.port, device.modbus.unit_id, profile
                        )
                        assert profile.modbus is not None
                        readable = {p.name for p in profile.modbus.points if not p.write_only}
                        assert set(values) == readable
                        if device.id == "r101-air":
                            assert values["co2"] == (1501 if school.id == "d1-s02" else 999)
                    else:
                        assert device.mqtt is not None
                        assert device.mqtt.topic == f"site/{school.id}/{device.id}"
            seen: dict[str, dict[str, float]] = {}
            async with asyncio.timeout(5):
                async for message in client.messages:
                    profile = "tuya_ts0601_dimmer" if "board" in message.topic.value else REC
                    mapping = profiles[profile].mqtt
                    assert mapping is not None and isinstance(message.payload, bytes)
                    seen[message.topic.value] = decode_mqtt_payload(mapping, message.payload).values
                    if len(seen) == 4:
                        break
        assert set(seen) == {
            topic
            for s in plan.schools
            for topic in (f"site/{s.id}/rec1-ctrl/status", f"site/{s.id}/r101-board")
        }
        recorders = [v for topic, v in seen.items() if topic.endswith("/status")]
        assert all(values["storage_free_gb"] == 42.0 for values in recorders)
        assert fleet.published("d1-s01") > 0
    finally:
        await fleet.stop()


async def test_fleet_faults_reach_the_device_and_stop_closes_every_port(
    mosquitto_broker: MosquittoBroker,
) -> None:
    plan = plan_city(1, 1, seed=4)
    fleet = await run_fleet(
        plan,
        site_broker_host=mosquitto_broker.host,
        site_broker_port=site_port(mosquitto_broker),
        clock=HandClock(),
    )
    configs = {d["id"]: d for d in fleet.agent_device_configs("d1-s01")}
    gas = configs["lab1-gas"]["modbus"]
    fleet.set_fault("d1-s01", "lab1-gas", Fault(FaultKind.EXCEPTION, exception_code=2))
    client = AsyncModbusTcpClient("127.0.0.1", port=gas["port"], timeout=1, retries=0)
    await client.connect()
    response = await client.read_holding_registers(0, count=1, device_id=gas["unit_id"])
    client.close()
    assert response.isError() and response.exception_code == 2
    await fleet.stop()
    with pytest.raises(OSError):
        _reader, writer = await asyncio.open_connection("127.0.0.1", gas["port"])
        writer.close()


def test_unknown_school_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="d9-s01"):
        plan_city(1, 1, seed=1).school("d9-s01")
