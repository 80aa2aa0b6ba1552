"""Faults on demand give the client-side outcome a real broken device gives."""

from __future__ import annotations

from typing import Any

import pytest
from pymodbus.exceptions import ModbusIOException

from device_profiles.schema import Profile
from simulators.devices import SimulatedDevice
from simulators.faults import FAULTS, Fault, FaultKind
from simulators.modbus_server import ServedUnit

CO2 = "sensecap_s_co2_03"


async def two_sensors(profiles: dict[str, Profile], modbus_server: Any) -> Any:
    units = [
        ServedUnit(1, SimulatedDevice("faulty", profiles[CO2], seed=1, fixed_values={"co2": 800})),
        ServedUnit(2, SimulatedDevice("healthy", profiles[CO2], seed=2, fixed_values={"co2": 600})),
    ]
    return await modbus_server(units)


@pytest.mark.parametrize("code", [2, 4])
async def test_exception_fault_answers_every_request_with_its_exception_code(
    code: int, profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    server = await two_sensors(profiles, modbus_server)
    server.device(1).set_fault(Fault(FaultKind.EXCEPTION, exception_code=code))
    client = await connect(server.port)
    read = await client.read_holding_registers(0, count=3, device_id=1)
    assert read.isError() and read.exception_code == code
    assert (await client.read_holding_registers(0, count=1, device_id=2)).registers == [600]


async def test_exception_fault_refuses_writes_and_the_device_keeps_its_state(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    dali = SimulatedDevice("dali", profiles["arlight_dali_logic_lite"], seed=1)
    server = await modbus_server([ServedUnit(1, dali)])
    dali.set_fault(Fault(FaultKind.EXCEPTION, exception_code=4))
    client = await connect(server.port)
    write = await client.write_register(384, 7, device_id=1)
    assert write.isError() and write.exception_code == 4
    assert dali.writes == 0


async def test_offline_unit_times_out_while_the_other_units_keep_answering(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    server = await two_sensors(profiles, modbus_server)
    server.device(1).set_fault(Fault(FaultKind.OFFLINE))
    silent = await connect(server.port, wait_s=0.3)
    with pytest.raises(ModbusIOException):
        await silent.read_holding_registers(0, count=3, device_id=1)
    other = await connect(server.port)
    assert (await other.read_holding_registers(0, count=1, device_id=2)).registers == [600]

    server.device(1).set_fault(None)
    back = await connect(server.port)
    assert (await back.read_holding_registers(0, count=1, device_id=1)).registers == [800]


async def test_stuck_values_freeze_until_the_fault_clears(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any, clock: Any
) -> None:
    device = SimulatedDevice("air", profiles[CO2], seed=5)
    server = await modbus_server([ServedUnit(1, device)])
    client = await connect(server.port)
    device.set_fault(Fault(FaultKind.STUCK))
    frozen = (await client.read_holding_registers(0, count=3, device_id=1)).registers
    for _ in range(3):
        clock.advance(600)  # ten simulated minutes of a lesson: CO2 would rise
        assert (await client.read_holding_registers(0, count=3, device_id=1)).registers == frozen
    device.set_fault(None)
    assert (await client.read_holding_registers(0, count=3, device_id=1)).registers != frozen


async def test_garbage_fault_returns_random_registers(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    server = await two_sensors(profiles, modbus_server)
    client = await connect(server.port)
    clean = (await client.read_holding_registers(0, count=3, device_id=1)).registers
    server.device(1).set_fault(Fault(FaultKind.GARBAGE))
    reads = [
        (await client.read_holding_registers(0, count=3, device_id=1)).registers for _ in range(3)
    ]
    assert all(read != clean for read in reads)
    assert len({tuple(read) for read in reads}) == 3


def test_every_fault_kind_is_in_the_table_and_parses_from_text() -> None:
    assert set(FAULTS) == set(FaultKind)
    assert Fault.parse("offline") == Fault(FaultKind.OFFLINE)
    assert Fault.parse("exception:2") == Fault(FaultKind.EXCEPTION, exception_code=2)
    assert Fault.parse("exception").exception_code == 4


@pytest.mark.parametrize("text", ["melted", "exception:3", "stuck:2"])
def test_unknown_faults_and_codes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Fault.parse(text)
