"""The simulated safety devices answer a real pymodbus client like the real ones: relay
commands switch outputs, the cold room follows its set-point, contacts rest at 0, faults apply."""

from __future__ import annotations

from typing import Any

import pytest

from device_profiles.schema import Profile
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.modbus_server import ServedUnit
from tests.sim.test_sim_modbus_server import read_all

RELAY_ON, RELAY_OFF, RELAY_TOGGLE = 0x0100, 0x0200, 0x0300


async def test_relay_commands_switch_the_output_states_read_back(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    relay = SimulatedDevice("relay", profiles["eletechsup_8ch_relay"], seed=1)
    server = await modbus_server([ServedUnit(3, relay)])
    client = await connect(server.port)

    assert not (await client.write_register(1, RELAY_ON, device_id=3)).isError()
    assert not (await client.write_register(2, RELAY_TOGGLE, device_id=3)).isError()
    values = (await read_all(client, relay.profile, 3)).values
    assert [values[f"relay_{n}"] for n in range(1, 5)] == [1, 1, 0, 0]

    assert not (await client.write_register(1, RELAY_OFF, device_id=3)).isError()
    assert (await read_all(client, relay.profile, 3)).values["relay_1"] == 0


async def test_the_cold_room_follows_a_written_set_point(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    cold = SimulatedDevice("cold", profiles["eliwell_id974_cold_room"], seed=4)
    server = await modbus_server([ServedUnit(1, cold)])
    client = await connect(server.port)
    before = (await read_all(client, cold.profile, 1)).values
    assert before["setpoint"] == 3.0 and 2.0 < before["temperature"] < 5.0

    assert not (await client.write_register(24128, 60, device_id=1)).isError()  # 6.0 °C
    after = (await read_all(client, cold.profile, 1)).values
    assert after["setpoint"] == 6.0 and 5.0 < after["temperature"] < 8.0


@pytest.mark.parametrize("kind", [FaultKind.STUCK, FaultKind.GARBAGE])
async def test_safety_inputs_rest_at_zero_and_take_faults(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any, kind: FaultKind
) -> None:
    inputs = SimulatedDevice("di", profiles["eletechsup_8di_safety_inputs"], seed=2)
    server = await modbus_server([ServedUnit(1, inputs)])
    client = await connect(server.port)
    assert set((await read_all(client, inputs.profile, 1)).values.values()) == {0.0}

    inputs.fixed_values["smoke_fire_alarm"] = 1
    assert (await read_all(client, inputs.profile, 1)).values["smoke_fire_alarm"] == 1
    inputs.set_fault(Fault(kind))
    first = (await read_all(client, inputs.profile, 1)).values
    inputs.fixed_values["smoke_fire_alarm"] = 0
    second = (await read_all(client, inputs.profile, 1)).values
    if kind is FaultKind.STUCK:
        assert first == second and first["smoke_fire_alarm"] == 1
    else:
        assert any(v not in (0, 1) for v in first.values())
