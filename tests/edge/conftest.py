"""Edge fixtures: a real pymodbus TCP server on a free port, built from a register map."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_profiles.registers import encode_point
from device_profiles.schema import ModbusMap, Profile

REGISTERS = 1024


@dataclass
class ModbusServer:
    """A running pymodbus server whose registers hold a profile's values.

    ``requests`` counts read requests received; set ``fail_with`` to an ``ExcCodes`` member to make
    every request answer with that exception response, ``delay_s`` to make every answer late.
    """

    server: ModbusTcpServer
    port: int
    registers: list[int]
    requests: list[tuple[str, int, int]] = field(default_factory=list)
    fail_with: ExcCodes | None = None
    delay_s: float = 0.0  # a slow device: every answer comes this late

    def set_value(self, profile: Profile, point: str, value: float) -> None:
        modbus_map = _map(profile)
        spec = next(p for p in modbus_map.points if p.name == point)
        words = encode_point(spec, value, modbus_map)
        self.registers[spec.address : spec.address + len(words)] = words


def _map(profile: Profile) -> ModbusMap:
    assert profile.modbus is not None
    return profile.modbus


@pytest.fixture
async def modbus_server() -> AsyncIterator[Any]:
    """Factory: ``await modbus_server(profile, values, unit=1)`` starts a server on a free port."""
    started: list[ModbusServer] = []

    async def start(profile: Profile, values: dict[str, float], *, unit: int = 1) -> ModbusServer:
        holder: dict[str, ModbusServer] = {}

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            sim = holder["sim"]
            if sim.delay_s:
                await asyncio.sleep(sim.delay_s)
            registers[:] = sim.registers  # serve the test's current values
            return sim.fail_with

        def trace(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
            if not sending:
                sim = holder["sim"]
                sim.requests.append(
                    (type(pdu).__name__, getattr(pdu, "address", -1), getattr(pdu, "count", -1))
                )
            return pdu

        device = SimDevice(
            id=unit,
            simdata=[SimData(address=0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            action=action,
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", 0), trace_pdu=trace)
        await server.serve_forever(background=True)
        assert server.transport is not None
        port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sim = ModbusServer(server=server, port=port, registers=[0] * REGISTERS)
        holder["sim"] = sim
        for name, value in values.items():
            sim.set_value(profile, name, value)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.server.shutdown()
