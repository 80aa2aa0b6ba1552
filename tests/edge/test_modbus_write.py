"""DeviceCoordinator.write_point against a real pymodbus TCP server that keeps what is written.

Every write ends in a ``WriteResult``: verified (read back equal), mismatch (the device holds
something else), unverified (write-only), rejected before sending, or failed on the device.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_profiles.schema import Profile
from edge_agent.settings import DeviceConfig
from edge_agent.sources.modbus import DeviceCoordinator, WriteOutcome

PROFILE = Profile.model_validate(
    {
        "id": "test_controller",
        "name": "Lighting controller",
        "domain": "lighting",
        "protocol": "modbus",
        "modbus": {
            "timeout_s": 0.3,
            "points": [
                {"name": "level", "address": 0, "type": "uint16", "scale": 0.1, "writable": True},
                {
                    "name": "mode",
                    "address": 1,
                    "type": "uint16",
                    "bit": 4,
                    "bits": 3,
                    "writable": True,
                },
                {"name": "limit", "address": 2, "type": "float32", "writable": True},
                {"name": "clamped", "address": 20, "type": "uint16", "writable": True},
                {
                    "name": "scene",
                    "address": 30,
                    "type": "uint16",
                    "writable": True,
                    "write_only": True,
                },
                {"name": "locked", "address": 40, "type": "uint16", "writable": True},
                {
                    "name": "state",
                    "address": 5,
                    "type": "uint16",
                    "value_map": {0: 0, 3: 1},
                    "writable": True,
                },
                {"name": "relay", "table": "coil", "address": 3, "type": "bool", "writable": True},
                {"name": "serial", "address": 50, "type": "string", "length": 2},
            ],
        },
    }
)


@pytest.fixture
async def device_port() -> AsyncIterator[int]:
    """A controller: register 20 never holds more than 100, register 40 refuses writes."""

    async def action(
        fc: int, start: int, address: int, count: int, registers: list[int], set_values: Any
    ) -> ExcCodes | None:
        if set_values is not None and address == 40:
            return ExcCodes.ILLEGAL_VALUE
        if set_values is None and fc == 3 and address <= 20 < address + count:
            registers[20 - start] = min(registers[20 - start], 100)  # start: the block's first
        return None

    device = SimDevice(
        id=1,
        simdata=(
            [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(address=0, count=64, values=0, datatype=DataType.REGISTERS)],
            [SimData(address=0, count=8, values=0, datatype=DataType.REGISTERS)],
        ),
        action=action,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    assert server.transport is not None
    yield server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await server.shutdown()


@pytest.fixture
async def coordinator(device_port: int) -> AsyncIterator[DeviceCoordinator]:
    config = DeviceConfig.model_validate(
        {
            "id": "r101-lights",
            "profile": PROFILE.id,
            "room": "r101",
            "modbus": {"host": "127.0.0.1", "port": device_port},
        }
    )
    coordinator = DeviceCoordinator(config, PROFILE)
    yield coordinator
    coordinator.close()


async def test_a_scaled_register_write_is_read_back_and_verified(
    coordinator: DeviceCoordinator,
) -> None:
    result = await coordinator.write_point("level", 42.5)

    assert result.ok and result.outcome is WriteOutcome.VERIFIED
    assert (result.read_back, result.registers) == (pytest.approx(42.5), (425,))
    assert (await coordinator.refresh()).values["level"] == pytest.approx(42.5)


async def test_a_bit_field_write_keeps_the_other_bits_of_its_register(
    coordinator: DeviceCoordinator,
) -> None:
    await coordinator.write_point("mode", 7)
    result = await coordinator.write_point("mode", 5)

    assert result.outcome is WriteOutcome.VERIFIED
    assert (await coordinator.refresh()).values["mode"] == 5


async def test_float_coil_and_enumeration_writes_are_verified(
    coordinator: DeviceCoordinator,
) -> None:
    results = [
        await coordinator.write_point("limit", 12.25),
        await coordinator.write_point("relay", 1),
        await coordinator.write_point("state", 1),
    ]

    assert [r.outcome for r in results] == [WriteOutcome.VERIFIED] * 3
    assert results[2].registers == (3,)
    reading = await coordinator.refresh()
    assert (reading.values["relay"], reading.values["state"]) == (1.0, 1.0)


async def test_a_device_that_holds_another_value_is_a_mismatch(
    coordinator: DeviceCoordinator,
) -> None:
    result = await coordinator.write_point("clamped", 250)

    assert (result.outcome, result.ok, result.read_back) == (WriteOutcome.MISMATCH, False, 100)
    assert "reads back 100 after writing 250" in result.detail


async def test_a_write_only_point_is_written_but_unverified(
    coordinator: DeviceCoordinator,
) -> None:
    result = await coordinator.write_point("scene", 3)

    assert (result.outcome, result.ok, result.read_back) == (WriteOutcome.UNVERIFIED, True, None)


@pytest.mark.parametrize(
    ("point", "value", "error_type", "says"),
    [
        ("nope", 1, "not_writable", "unknown point 'nope'"),
        ("serial", 1, "not_writable", "point is not writable 'serial'"),
        ("level", 7000, "invalid_value", "out of range for uint16"),
        ("mode", 8, "invalid_value", "bit field value must be 0..7"),
        ("state", 2, "invalid_value", "none of the mapped values"),
    ],
)
async def test_a_bad_write_is_rejected_before_anything_is_sent(
    coordinator: DeviceCoordinator, point: str, value: float, error_type: str, says: str
) -> None:
    result = await coordinator.write_point(point, value)

    assert (result.outcome, result.error_type) == (WriteOutcome.REJECTED, error_type)
    assert says in result.detail
    assert coordinator.link.connects == 0


async def test_an_exception_response_is_a_failed_write_and_polling_goes_on(
    coordinator: DeviceCoordinator,
) -> None:
    result = await coordinator.write_point("locked", 1)

    assert (result.outcome, result.error_type) == (WriteOutcome.FAILED, "illegal_data_value")
    assert (await coordinator.refresh()).values["locked"] == 0
    assert coordinator.texts == {"serial": ""}
