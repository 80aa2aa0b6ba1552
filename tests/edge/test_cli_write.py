"""``campus agent write``: a technician writes a point (or runs an action) with read-back; the
write is audited, holds automatic actions off the point, and is queued for the hub. Refusals
name the reason and exit 2; a device that does not take the value exits 1. (Real simulator.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from campus_forward.outbox import Outbox
from campus_protocol.messages import CommandResult, MessageKind, parse_body_json
from cloud_hub.broker import MosquittoBroker
from device_profiles.loader import load_profiles
from edge_agent.app import OUTBOX_FILE, RULES_FILE
from edge_agent.cli import SAMPLE_CONFIG, app
from edge_agent.rules import RuleStore
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock

runner = CliRunner()


@pytest.fixture
async def lights() -> AsyncIterator[tuple[ModbusSimServer, SimulatedDevice]]:
    device = SimulatedDevice("room-101-lights", load_profiles()["arlight_dali_logic_lite"], seed=3)
    async with ModbusSimServer([ServedUnit(1, device)], clock=SimClock()) as server:
        yield server, device


def config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "agent.yaml"
    data = {
        "gateway": {"id": "gw-1", "site": {"city_id": "c", "district_id": "d", "school_id": "s"}},
        "hub": {"password": "a-real-secret"},
        "data_dir": str(tmp_path / "data"),
        "devices": [
            {
                "id": "room-101-lights",
                "profile": "arlight_dali_logic_lite",
                "room": "room-101",
                "modbus": {"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
            }
        ],
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def write(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, ["write", *args])
    return result.exit_code, result.output


async def test_a_point_write_is_read_back_audited_held_and_queued_for_the_hub(
    lights: tuple[ModbusSimServer, SimulatedDevice], tmp_path: Path
) -> None:
    server, device = lights
    path = config(tmp_path, server.port)

    code, output = await write("-c", str(path), "room-101-lights", "group_2_set_level", "90")

    assert code == 0, output
    assert "succeeded" in output and "90" in output
    assert device.model.values(server.clock.now())["group_2_level"] == 90
    store = RuleStore(tmp_path / "data" / RULES_FILE)
    [record] = store.audit_records()
    held = store.held_until("room-101-lights", "group_2_set_level")
    store.close()
    assert (record["origin"], record["what"], record["status"]) == (
        "technician",
        "group_2_set_level=90",
        "succeeded",
    )
    assert held is not None and held > time.time() + 1700  # 30 minutes by default
    with Outbox(tmp_path / "data" / OUTBOX_FILE) as outbox:
        [row] = outbox.pending()
    result = parse_body_json(MessageKind.CMDRES, row.body)
    assert isinstance(result, CommandResult)
    assert (result.origin, result.status, result.readback) == ("local", "succeeded", 90.0)


async def test_a_named_action_runs_with_read_back(
    lights: tuple[ModbusSimServer, SimulatedDevice], tmp_path: Path
) -> None:
    server, device = lights
    code, output = await write(
        "-c", str(config(tmp_path, server.port)), "room-101-lights", "--action", "emergency_scene"
    )
    assert code == 0, output
    assert device.model.values(server.clock.now())["group_0_level"] == 254


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["room-101-lights", "group_0_level", "5"], "point 'group_0_level' is read-only"),
        (["room-101-lights", "group_0_set_level", "999"], "999 outside 0..254"),
        (["gym-lights", "group_0_set_level", "5"], "no device 'gym-lights'"),
        (["room-101-lights", "--action", "disco"], "no action 'disco'"),
    ],
)
async def test_refusals_name_the_reason_and_write_nothing(
    lights: tuple[ModbusSimServer, SimulatedDevice],
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    server, device = lights
    code, output = await write("-c", str(config(tmp_path, server.port)), *args)
    assert code == 2
    assert message in " ".join(output.split())
    assert device.writes == 0


async def test_a_device_that_ignores_the_write_fails_after_bounded_retries(
    lights: tuple[ModbusSimServer, SimulatedDevice], tmp_path: Path
) -> None:
    server, device = lights
    device.set_fault(Fault(FaultKind.STUCK))  # takes writes, keeps reporting the old values
    device.read(server.clock.now())  # (values freeze at the first read of the fault)
    code, output = await write(
        "-c", str(config(tmp_path, server.port)), "room-101-lights", "group_1_set_level", "77",
        "--retries", "1",
    )  # fmt: skip
    assert code == 1
    assert "failed" in output
    assert device.writes == 2  # the first try and one retry


def test_the_sample_configs_safety_section_validates_when_uncommented(tmp_path: Path) -> None:
    lines = SAMPLE_CONFIG.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("# local_actions:")))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("#  "))
    lines[start:end] = [line[2:] for line in lines[start:end]]
    data = yaml.safe_load("\n".join(lines))
    data["hub"]["password"] = "a-real-secret"
    assert data["local_actions"][0]["run"] == {"device": "lab-3-relay", "action": "relay_1_on"}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = runner.invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("group", [False, True], ids=["configured", "found-by-a-group"])
async def test_a_technician_switches_an_mqtt_relay_confirmed_by_its_state_report(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, group: bool
) -> None:
    fan = SimulatedDevice("lab-fan", load_profiles()["sonoff_zbmini"], seed=3)
    publisher = MqttDevicePublisher(
        fan, topic="zigbee2mqtt/lab-fan", host=mosquitto_broker.host,
        port=mosquitto_broker.site_port or 0, clock=SimClock(), interval_s=30,
    )  # fmt: skip
    path = tmp_path / "agent.yaml"
    data = yaml.safe_load(config(tmp_path, 1).read_text(encoding="utf-8"))
    data["site_broker"] = {"host": mosquitto_broker.host, "port": mosquitto_broker.site_port}
    data["devices"] = [{"id": "lab-fan", "profile": "sonoff_zbmini", "room": "lab-1",
                        "mqtt": {"topic": "zigbee2mqtt/lab-fan"}}]  # fmt: skip
    if group:  # the relay is found when it reports (retained: at once)
        data["mqtt_groups"] = [{"profile": "sonoff_zbmini", "topic": "zigbee2mqtt/{device}",
                                "room": "lab-1"}]  # fmt: skip
        data["devices"] = []
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    publisher.start()
    try:
        code, output = await write("-c", str(path), "lab-fan", "--action", "relay_on")
    finally:
        await publisher.stop()

    assert code == 0, output
    assert "succeeded" in output
    assert fan.read(SimClock().now())["state"] == 1
    assert publisher.commands == 1
