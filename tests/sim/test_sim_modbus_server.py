"""The simulated Modbus server answers a real pymodbus client with what the devices hold."""

from __future__ import annotations

from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from device_profiles.errors import EncodeError
from device_profiles.registers import DecodedValues, decode_block, plan_reads
from device_profiles.schema import Profile, RegisterTable
from simulators.devices import Classroom, SimulatedDevice, UnknownPointError
from simulators.modbus_server import ModbusServerError, ModbusSimServer, ServedUnit

FIXED: dict[str, dict[str, float]] = {
    "sensecap_s_co2_03": {"co2": 1234, "temperature": 21.37, "humidity": 48.5},
    "renke_rs_gzws_n01": {"humidity": 55.5, "temperature": -3.2, "illuminance": 123456},
    "eastron_sdm120": {
        "voltage": 221.5,
        "current": 4.25,
        "active_power": 905.0,
        "power_factor": 0.95,
        "frequency": 50.0,
        "import_energy": 12345.5,
    },
    "honeywell_midas_gas": {
        "fault_maintenance": 0,
        "fault_instrument": 1,
        "low_alarm": 1,
        "high_alarm": 0,
        "heartbeat": 1,
        "concentration": 27.5,
        "fault_number": 31,
        "concentration_unit_code": 8,
        "sensor_temperature": -5,
        "cell_life_remaining": 9000,
    },
    "arlight_dali_logic_lite": {
        **{f"device_{a}_status": 4 for a in range(4)},
        **{f"group_{g}_level": 50 * g for g in range(4)},
        **{f"group_{g}_on": 1 if g else 0 for g in range(4)},
    },
}


async def read_all(client: AsyncModbusTcpClient, profile: Profile, unit: int) -> DecodedValues:
    """Poll like the agent does: every planned block, decoded with device_profiles."""
    assert profile.modbus is not None
    result = DecodedValues()
    for block in plan_reads(profile.modbus):
        read = (
            client.read_holding_registers
            if block.table is RegisterTable.HOLDING
            else client.read_input_registers
        )
        response = await read(block.start, count=block.count, device_id=unit)
        assert not response.isError(), f"{profile.id} block {block.start}: {response}"
        decoded = decode_block(block, response.registers, profile.modbus)
        result.values.update(decoded.values)
        result.invalid.extend(decoded.invalid)
    return result


def units_with_fixed_values(profiles: dict[str, Profile]) -> list[ServedUnit]:
    return [
        ServedUnit(unit, SimulatedDevice(pid, profiles[pid], seed=unit, fixed_values=values))
        for unit, (pid, values) in enumerate(FIXED.items(), start=1)
    ]


async def test_every_profile_decodes_to_exactly_the_fixed_values_served(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    server = await modbus_server(units_with_fixed_values(profiles))
    client = await connect(server.port)
    for unit, (pid, values) in enumerate(FIXED.items(), start=1):
        decoded = await read_all(client, profiles[pid], unit)
        assert decoded.invalid == []
        assert decoded.values == pytest.approx(values, rel=1e-6), pid


async def test_signal_values_decode_to_plausible_classroom_readings(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    room = Classroom(seed=3)
    ids = ["arlight_dali_logic_lite", "renke_rs_gzws_n01", "sensecap_s_co2_03", "eastron_sdm120"]
    units = [
        ServedUnit(unit, SimulatedDevice(pid, profiles[pid], seed=unit, room=room))
        for unit, pid in enumerate(ids, start=1)
    ]
    server = await modbus_server(units)
    client = await connect(server.port)
    lights = (await read_all(client, profiles[ids[0]], 1)).values
    lux = (await read_all(client, profiles[ids[1]], 2)).values
    air = (await read_all(client, profiles[ids[2]], 3)).values
    meter = (await read_all(client, profiles[ids[3]], 4)).values
    assert all(0 < lights[f"group_{g}_level"] <= 254 for g in range(4))  # lesson time: lights on
    assert 300 <= lux["illuminance"] < 2000
    assert 420 < air["co2"] < 2500 and 15 < air["temperature"] < 30
    assert 200 < meter["voltage"] < 240 and meter["active_power"] > 0


async def test_writing_group_brightness_changes_the_level_the_gateway_reports(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    dali = SimulatedDevice("dali", profiles["arlight_dali_logic_lite"], seed=1)
    server = await modbus_server([ServedUnit(1, dali)])
    client = await connect(server.port)

    assert not (await client.write_register(384 + 1, 200, device_id=1)).isError()
    assert (await read_all(client, dali.profile, 1)).values["group_1_level"] == 200

    assert not (await client.write_register(384 + 2, 0, device_id=1)).isError()
    values = (await read_all(client, dali.profile, 1)).values
    assert values["group_2_level"] == 0 and values["group_2_on"] == 0
    assert values["device_2_status"] == 0  # the ballast of group 2 reports its lamp off
    assert values["group_1_level"] == 200


async def test_a_write_overrides_a_fixed_level_of_the_same_group(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    dali = SimulatedDevice(
        "dali", profiles["arlight_dali_logic_lite"], seed=1,
        fixed_values={"group_0_level": 10, "group_3_level": 30},
    )  # fmt: skip
    server = await modbus_server([ServedUnit(1, dali)])
    client = await connect(server.port)
    await client.write_registers(384, [111, 112, 113, 114], device_id=1)
    values = (await read_all(client, dali.profile, 1)).values
    assert [values[f"group_{g}_level"] for g in range(4)] == [111, 112, 113, 114]


async def test_writing_a_read_only_register_is_refused_with_illegal_data_address(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    dali = SimulatedDevice("dali", profiles["arlight_dali_logic_lite"], seed=1)
    server = await modbus_server([ServedUnit(1, dali)])
    client = await connect(server.port)
    response = await client.write_register(2688, 99, device_id=1)
    assert response.isError() and response.exception_code == 2
    assert dali.writes == 0


async def test_reading_outside_the_profile_map_is_an_illegal_data_address(
    profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    air = SimulatedDevice("air", profiles["sensecap_s_co2_03"], seed=1)
    server = await modbus_server([ServedUnit(45, air)])
    client = await connect(server.port)
    response = await client.read_holding_registers(100, count=2, device_id=45)
    assert response.isError() and response.exception_code == 2


async def test_port_zero_binds_a_free_port_and_two_servers_get_different_ports(
    profiles: dict[str, Profile], modbus_server: Any
) -> None:
    first = await modbus_server(
        [ServedUnit(1, SimulatedDevice("a", profiles["eastron_sdm120"], seed=1))]
    )
    second = await modbus_server(
        [ServedUnit(1, SimulatedDevice("b", profiles["eastron_sdm120"], seed=2))]
    )
    assert first.port > 0 and second.port > 0 and first.port != second.port


async def test_a_taken_port_is_a_named_error(
    profiles: dict[str, Profile], modbus_server: Any, clock: Any
) -> None:
    first = await modbus_server(
        [ServedUnit(1, SimulatedDevice("a", profiles["eastron_sdm120"], seed=1))]
    )
    clash = ModbusSimServer(
        [ServedUnit(1, SimulatedDevice("b", profiles["eastron_sdm120"], seed=2))],
        clock=clock, port=first.port,
    )  # fmt: skip
    with pytest.raises(ModbusServerError):
        await clash.start()


def test_fixed_values_must_name_profile_points_and_fit_their_registers(
    profiles: dict[str, Profile], clock: Any
) -> None:
    with pytest.raises(UnknownPointError, match="no_such_point"):
        SimulatedDevice(
            "a", profiles["sensecap_s_co2_03"], seed=1, fixed_values={"no_such_point": 1}
        )
    negative_co2 = SimulatedDevice(
        "a", profiles["sensecap_s_co2_03"], seed=1, fixed_values={"co2": -5}
    )
    with pytest.raises(EncodeError):
        ModbusSimServer([ServedUnit(1, negative_co2)], clock=clock)


def test_duplicate_unit_ids_are_refused(profiles: dict[str, Profile], clock: Any) -> None:
    units = [
        ServedUnit(1, SimulatedDevice(name, profiles["eastron_sdm120"], seed=1)) for name in "ab"
    ]
    with pytest.raises(ModbusServerError, match="duplicated"):
        ModbusSimServer(units, clock=clock)


@pytest.mark.parametrize("function", ["read_holding_registers", "read_input_registers",
                                      "read_coils", "read_discrete_inputs"])  # fmt: skip
async def test_a_unit_id_with_no_device_gets_the_gateways_0x0b_not_a_device_exception(
    function: str, profiles: dict[str, Profile], modbus_server: Any, connect: Any
) -> None:
    air = SimulatedDevice("air", profiles["sensecap_s_co2_03"], seed=1, fixed_values={"co2": 700})
    server = await modbus_server([ServedUnit(45, air)])
    client = await connect(server.port)

    for unit in (1, 46, 247):
        response = await getattr(client, function)(0, count=1, device_id=unit)
        assert response.isError() and response.exception_code == 0x0B, (unit, response)
        assert response.dev_id == unit
    assert (await client.read_holding_registers(0, count=1, device_id=45)).registers == [700]


def test_unit_id_0_is_refused_as_the_broadcast_address(
    profiles: dict[str, Profile], clock: Any
) -> None:
    meter = SimulatedDevice("meter", profiles["eastron_sdm120"], seed=1)
    with pytest.raises(ModbusServerError, match="broadcast"):
        ModbusSimServer([ServedUnit(0, meter)], clock=clock)
