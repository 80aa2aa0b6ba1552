"""Modbus RTU through a real pseudo-terminal pair (socat) and RTU over TCP, against the simulator.

Several unit ids share one line: the agent sends one request at a time on it, a dead unit costs
its own timeouts and backs off, and the healthy units keep their poll rate. A serial device
server (RTU over TCP) that drops the connection is reconnected to on the next poll.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_profiles.schema import Profile
from edge_agent.settings import AgentSettings, DeviceConfig
from edge_agent.sources.base import Reading
from edge_agent.sources.modbus import (
    ModbusSource,
    ModbusTimeout,
    WriteOutcome,
    build_coordinators,
)
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.serial_line import PtyPair
from simulators.signals import SimClock
from tests.edge.support import free_port, wait_until

PROFILE = Profile.model_validate(
    {
        "id": "test_rtu_meter",
        "name": "RS-485 energy meter",
        "domain": "energy",
        "protocol": "modbus",
        "modbus": {
            "poll_interval_s": 0.25,
            "timeout_s": 0.15,
            "points": [
                {"name": "voltage", "address": 0, "type": "float32", "unit": "V"},
                {"name": "current", "address": 2, "type": "int16", "scale": 0.01, "unit": "A"},
                {"name": "energy", "address": 3, "type": "uint64", "unit": "Wh"},
                {
                    "name": "setpoint",
                    "address": 10,
                    "type": "uint16",
                    "scale": 0.1,
                    "writable": True,
                },
            ],
        },
    }
)


def served(unit: int) -> ServedUnit:
    values = {
        "voltage": 220.0 + unit,
        "current": 1.5 * unit,
        "energy": 10**12 + unit,
        "setpoint": 20.0,
    }
    device = SimulatedDevice(f"meter-{unit}", PROFILE, seed=unit, fixed_values=values)
    return ServedUnit(unit, device)


def rtu_device(unit: int, serial_port: Path, **extra: Any) -> DeviceConfig:
    modbus = {
        "transport": "rtu",
        "serial_port": str(serial_port),
        "baudrate": 115200,
        "unit_id": unit,
        **extra,
    }
    return DeviceConfig.model_validate(
        {"id": f"meter-{unit}", "profile": PROFILE.id, "room": "pnl1", "modbus": modbus}
    )


def rtu_over_tcp_device(unit: int, port: int) -> DeviceConfig:
    modbus = {"transport": "rtu_over_tcp", "host": "127.0.0.1", "port": port, "unit_id": unit}
    return DeviceConfig.model_validate(
        {"id": f"meter-{unit}", "profile": PROFILE.id, "room": "pnl1", "modbus": modbus}
    )


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path) as pair:
        yield pair


@pytest.fixture
async def rtu_line_server(line: PtyPair) -> AsyncIterator[ModbusSimServer]:
    """Units 1, 2 and 3 on the device end of the line."""
    server = ModbusSimServer(
        [served(1), served(2), served(3)],
        clock=SimClock(),
        transport="rtu",
        serial_port=str(line.device_end),
        baudrate=115200,
    )
    await server.start()
    yield server
    await server.stop()


async def run_for(source: ModbusSource, seconds: float) -> list[Reading]:
    readings: list[Reading] = []
    await source.start(readings.append)
    await asyncio.sleep(seconds)
    await source.stop()
    return readings


async def test_rtu_units_on_one_serial_line_share_one_link_and_decode(
    line: PtyPair, rtu_line_server: ModbusSimServer
) -> None:
    coordinators = build_coordinators(
        [(rtu_device(unit, line.agent_end), PROFILE) for unit in (1, 2)]
    )
    assert coordinators[0].link is coordinators[1].link

    first, second = [await c.refresh() for c in coordinators]

    assert first.values == pytest.approx(
        {"voltage": 221.0, "current": 1.5, "energy": 10**12 + 1, "setpoint": 20.0}
    )
    assert second.values["voltage"] == pytest.approx(222.0)
    assert coordinators[0].link.connects == 1
    coordinators[0].link.close()


async def test_rtu_line_with_one_dead_unit_keeps_the_healthy_units_at_their_poll_rate(
    line: PtyPair, rtu_line_server: ModbusSimServer
) -> None:
    rtu_line_server.device(3).set_fault(Fault(FaultKind.OFFLINE))
    source = ModbusSource(
        build_coordinators([(rtu_device(u, line.agent_end), PROFILE) for u in (1, 2, 3)])
    )

    readings = await run_for(source, 2.6)

    per_device = Counter(r.device for r in readings)
    # 0.25 s interval over ~2.6 s (first tick within the first 0.25 s): about 10 polls each
    assert per_device["meter-1"] >= 8 and per_device["meter-2"] >= 8, per_device
    assert per_device["meter-3"] == 0
    dead = source.coordinator("meter-3")
    assert not dead.available and isinstance(dead.last_exception, ModbusTimeout)
    assert dead.consecutive_failures <= 5, "the dead unit backs off instead of hogging the line"
    assert source.coordinator("meter-1").link.connects == 1, "a silent unit keeps the line open"


async def test_rtu_write_is_serialised_with_polling_and_read_back(
    line: PtyPair, rtu_line_server: ModbusSimServer
) -> None:
    source = ModbusSource(
        build_coordinators([(rtu_device(u, line.agent_end), PROFILE) for u in (1, 2)])
    )
    readings: list[Reading] = []
    await source.start(readings.append)
    await wait_until(lambda: len(readings) >= 2)

    results = await asyncio.gather(
        *(source.coordinator("meter-1").write_point("setpoint", 21.5 + i) for i in range(3))
    )

    await source.stop()
    assert [r.outcome for r in results] == [WriteOutcome.VERIFIED] * 3
    assert results[-1].read_back == pytest.approx(23.5)
    assert rtu_line_server.device(1).fixed_values["setpoint"] == pytest.approx(23.5)
    assert rtu_line_server.device(2).fixed_values["setpoint"] == 20.0


async def test_rtu_serial_line_that_disappears_is_reopened_when_it_returns(
    line: PtyPair, rtu_line_server: ModbusSimServer
) -> None:
    (coordinator,) = build_coordinators([(rtu_device(1, line.agent_end), PROFILE)])
    await coordinator.refresh()

    await rtu_line_server.stop()
    line.stop()  # the USB adapter is pulled: both pty ends vanish
    with pytest.raises(Exception) as info:
        await coordinator.refresh()
    assert getattr(info.value, "error_type", None) in {"connection", "timeout"}

    line.start()
    await rtu_line_server.start()
    reading = await coordinator.refresh()

    assert reading.values["voltage"] == pytest.approx(221.0)
    assert coordinator.available
    coordinator.link.close()


async def test_rtu_over_tcp_converter_that_drops_the_connection_is_reconnected() -> None:
    port = free_port()
    server = ModbusSimServer(
        [served(1), served(7)], clock=SimClock(), port=port, transport="rtu_over_tcp"
    )
    await server.start()
    coordinators = build_coordinators(
        [(rtu_over_tcp_device(unit, port), PROFILE) for unit in (1, 7)]
    )
    try:
        assert (await coordinators[1].refresh()).values["voltage"] == pytest.approx(227.0)

        await server.stop()  # the serial device server reboots
        with pytest.raises(Exception) as info:
            await coordinators[0].refresh()
        assert getattr(info.value, "error_type", None) in {"connection", "timeout"}

        await server.start()
        reading = await coordinators[0].refresh()
        written = await coordinators[1].write_point("setpoint", 18.5)
    finally:
        coordinators[0].link.close()
        await server.stop()

    assert reading.values["current"] == pytest.approx(1.5)
    assert written.outcome is WriteOutcome.VERIFIED and written.ok
    assert coordinators[0].link.connects == 2


def test_an_rtu_endpoint_without_a_serial_port_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="serial_port: required with transport rtu"):
        DeviceConfig.model_validate(
            {"id": "m", "profile": PROFILE.id, "room": "r", "modbus": {"transport": "rtu"}}
        )


def test_rtu_devices_on_one_line_must_agree_on_its_baud_rate() -> None:
    devices = [
        rtu_device(1, Path("/dev/ttyUSB0")).model_dump(),
        rtu_device(2, Path("/dev/ttyUSB0"), baudrate=19200).model_dump(),
    ]
    with pytest.raises(ValueError, match=r"devices\[1\]\.modbus: serial line /dev/ttyUSB0"):
        AgentSettings.model_validate(
            {
                "gateway": {
                    "id": "gw-1",
                    "site": {"city_id": "c", "district_id": "d", "school_id": "s"},
                },
                "development": True,
                "devices": devices,
            }
        )
