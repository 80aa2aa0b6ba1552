"""``campus agent scan`` and ``registers`` against a real pymodbus server with two devices."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from campus_cli.main import app
from device_profiles.loader import load_profiles
from device_profiles.schema import RegisterType
from edge_agent.field.every_way import interpret
from simulators.devices import SimulatedDevice
from simulators.modbus_server import ModbusSimServer, ServedUnit
from simulators.serial_line import PtyPair
from simulators.signals import SimClock

runner = CliRunner()
CO2_UNIT, METER_UNIT = 3, 7


def two_devices() -> list[ServedUnit]:
    """A CO2 transmitter at unit 3 and an energy meter at unit 7."""
    profiles = load_profiles()
    co2 = SimulatedDevice("co2", profiles["sensecap_s_co2_03"], seed=1, fixed_values={"co2": 812})
    meter = SimulatedDevice(
        "meter", profiles["eastron_sdm120"], seed=2, fixed_values={"voltage": 229.5}
    )
    return [ServedUnit(CO2_UNIT, co2), ServedUnit(METER_UNIT, meter)]


CLOCK = SimClock(speed=1.0, start=datetime(2026, 11, 23, 9, 0))


@pytest.fixture
async def bus() -> AsyncIterator[ModbusSimServer]:
    """The two devices behind one Modbus TCP port."""
    server = ModbusSimServer(two_devices(), clock=CLOCK)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def rtu_line(tmp_path: Path) -> AsyncIterator[Path]:
    """The two devices on an RS485 line (a socat pty pair); yields the gateway's end."""
    with PtyPair(tmp_path) as line:
        server = ModbusSimServer(
            two_devices(), clock=CLOCK, transport="rtu", serial_port=str(line.device_end),
            baudrate=115200,
        )  # fmt: skip
        await server.start()
        yield line.agent_end
        await server.stop()


async def campus(*args: str) -> str:
    result = await asyncio.to_thread(runner.invoke, app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


async def test_scan_names_the_profile_each_unit_reads_as(bus: ModbusSimServer) -> None:
    out = await campus(
        "agent", "scan", "--host", "127.0.0.1", "--port", str(bus.port), "--units", "1-8"
    )

    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "sensecap_s_co2_03" in rows[str(CO2_UNIT)] and "co2=812" in rows[str(CO2_UNIT)]
    assert rows[str(METER_UNIT)].split("│")[3].strip().startswith("eastron_sdm120")


async def test_scan_counts_only_the_units_behind_the_gateway(bus: ModbusSimServer) -> None:
    """The gateway answers 0x0B for the six empty unit ids: they are not there."""
    out = await campus(
        "agent", "scan", "--host", "127.0.0.1", "--port", str(bus.port), "--units", "1-8"
    )

    assert f"tcp 127.0.0.1:{bus.port}: 2 of 8 unit ids answered" in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") > 3]
    assert rows == [str(CO2_UNIT), str(METER_UNIT)]


async def test_scan_of_an_rtu_line_names_the_profile_a_unit_reads_as(rtu_line: Path) -> None:
    out = await campus(
        "agent", "scan", "--serial", str(rtu_line), "--baudrate", "115200",
        "--units", str(CO2_UNIT), "--timeout", "0.2",
    )  # fmt: skip

    assert f"rtu {rtu_line} 115200 8N1: 1 of 1 unit ids answered" in out
    assert "sensecap_s_co2_03" in out and "co2=812" in out


async def test_scan_of_an_rtu_line_hears_nothing_from_an_empty_unit_id(rtu_line: Path) -> None:
    out = await campus(
        "agent", "scan", "--serial", str(rtu_line), "--baudrate", "115200",
        "--units", f"{CO2_UNIT - 1}-{CO2_UNIT}", "--timeout", "0.2",
    )  # fmt: skip

    assert f"rtu {rtu_line} 115200 8N1: 1 of 2 unit ids answered" in out


async def test_registers_shows_a_float_in_every_word_and_byte_order(bus: ModbusSimServer) -> None:
    out = await campus(
        "agent", "registers", "--host", "127.0.0.1", "--port", str(bus.port),
        "--unit", str(METER_UNIT), "--table", "input", "--address", "0", "--count", "2",
    )  # fmt: skip

    float_row = next(line for line in out.splitlines() if "float32" in line)
    assert float_row.split("│")[4].strip() == "229.5"  # ABCD: the meter's documented order


async def test_registers_says_why_a_read_was_refused(bus: ModbusSimServer) -> None:
    result = await asyncio.to_thread(
        runner.invoke, app,
        ["agent", "registers", "--host", "127.0.0.1", "--port", str(bus.port),
         "--unit", str(CO2_UNIT), "--address", "500"],
    )  # fmt: skip

    assert result.exit_code == 1
    assert "illegal data address" in result.output
    assert "Traceback" not in result.output


def test_every_way_decodes_one_value_in_each_layout() -> None:
    high, low = struct.unpack(">HH", struct.pack(">f", 23.45))
    layouts = {
        v.layout: v.value for v in interpret([low, high], start=0, types=[RegisterType.FLOAT32])
    }
    assert layouts["CDAB"] == pytest.approx(23.45)
    swapped = [int.from_bytes(w.to_bytes(2, "big"), "little") for w in (high, low)]
    layouts = {v.layout: v.value for v in interpret(swapped, start=0, types=[RegisterType.FLOAT32])}
    assert layouts["BADC"] == pytest.approx(23.45)
