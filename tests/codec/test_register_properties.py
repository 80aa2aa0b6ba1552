"""Properties of the register codec, checked against pymodbus's own conversion."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from device_profiles.registers import decode_block, encode_point, plan_reads
from device_profiles.schema import (
    REGISTER_COUNT,
    ModbusMap,
    Order,
    RegisterPoint,
    RegisterTable,
    RegisterType,
)

DATATYPE = ModbusTcpClient.DATATYPE
register = st.integers(min_value=0, max_value=0xFFFF)
NUMERIC = [t for t in RegisterType if t not in (RegisterType.STRING, RegisterType.BOOL)]
WORD_TABLES = [RegisterTable.HOLDING, RegisterTable.INPUT]


def _swap_bytes(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _pymodbus_value(
    registers: list[int], rtype: RegisterType, word_order: Order, byte_order: Order
) -> float:
    """What pymodbus decodes; it knows no byte order, so little-byte words are swapped first."""
    if byte_order is Order.LITTLE:
        registers = [_swap_bytes(w) for w in registers]
    value = ModbusTcpClient.convert_from_registers(
        registers, DATATYPE[rtype.name], word_order=word_order.value
    )
    assert isinstance(value, int | float)
    return float(value)


@st.composite
def register_maps(draw: Any, *, with_flags: bool = False) -> ModbusMap:
    """Random maps: 1-12 numeric points of any type, order and register table, addresses 0-200,
    and with ``with_flags`` single-bit fields and coils."""
    points = []
    for index in range(draw(st.integers(min_value=1, max_value=12))):
        if with_flags and draw(st.integers(0, 5)) == 0:
            points.append(
                RegisterPoint(
                    name=f"p{index}",
                    table=RegisterTable.COIL,
                    type=RegisterType.BOOL,
                    address=draw(st.integers(min_value=0, max_value=200)),
                )
            )
            continue
        rtype = draw(st.sampled_from(NUMERIC))
        bit = None
        if with_flags and REGISTER_COUNT[rtype] == 1 and draw(st.booleans()):
            bit = draw(st.integers(min_value=0, max_value=15))
        table = draw(st.sampled_from(WORD_TABLES))
        writable = table is RegisterTable.HOLDING and draw(st.booleans())
        points.append(
            RegisterPoint(
                name=f"p{index}",
                table=table,
                address=draw(st.integers(min_value=0, max_value=200)),
                type=rtype,
                word_order=draw(st.sampled_from([None, *Order])),
                byte_order=draw(st.sampled_from([None, *Order])),
                bit=bit,
                writable=writable,
                write_only=writable and draw(st.booleans()),
            )
        )
    return ModbusMap(
        word_order=draw(st.sampled_from(list(Order))),
        byte_order=draw(st.sampled_from(list(Order))),
        max_gap=draw(st.integers(min_value=0, max_value=16)),
        max_registers_per_read=draw(st.integers(min_value=4, max_value=125)),
        points=points,
    )


@given(modbus_map=register_maps(), data=st.data())
def test_decode_block_agrees_with_pymodbus_for_every_type_and_order(
    modbus_map: ModbusMap, data: st.DataObject
) -> None:
    for block in plan_reads(modbus_map):
        registers = data.draw(st.lists(register, min_size=block.count, max_size=block.count))
        decoded = decode_block(block, registers, modbus_map)
        for point in block.points:
            at = point.address - block.start
            expected = _pymodbus_value(
                registers[at : at + point.register_count],
                point.type,
                point.word_order or modbus_map.word_order,
                point.byte_order or modbus_map.byte_order,
            )
            if math.isfinite(expected):
                assert decoded.values[point.name] == expected, point
            else:
                assert point.name in decoded.invalid


@given(modbus_map=register_maps(with_flags=True), data=st.data())
def test_registers_survive_decode_then_encode(modbus_map: ModbusMap, data: st.DataObject) -> None:
    for block in plan_reads(modbus_map):
        cell = st.integers(0, 1) if block.table.is_bits else register
        registers = data.draw(st.lists(cell, min_size=block.count, max_size=block.count))
        decoded = decode_block(block, registers, modbus_map)
        for point in block.points:
            if point.name in decoded.invalid:
                continue  # NaN and inf payload bits are not kept
            if point.type in (RegisterType.INT64, RegisterType.UINT64):
                continue  # values are floats: exact to 2**53 (test_64_bit_integers_survive_...)
            at = point.address - block.start
            raw = registers[at : at + point.register_count]
            encoded = encode_point(point, decoded.values[point.name], modbus_map)
            if point.bit is not None:  # only that bit of the value is kept
                mask = 1 << point.bit
                if (point.byte_order or modbus_map.byte_order) is Order.LITTLE:
                    mask = _swap_bytes(mask)
                assert encoded == [raw[0] & mask]
            else:
                assert encoded == raw


SCALES = [0.001, 0.01, 0.1, 1.0, 10.0, -0.5]


@given(
    rtype=st.sampled_from([t for t in NUMERIC if REGISTER_COUNT[t] <= 2 and "float" not in t]),
    word_order=st.sampled_from(list(Order)),
    byte_order=st.sampled_from(list(Order)),
    scale=st.sampled_from(SCALES),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
    fraction=st.floats(min_value=0, max_value=1),
)
def test_scaled_integer_values_survive_encode_then_decode(
    rtype: RegisterType,
    word_order: Order,
    byte_order: Order,
    scale: float,
    offset: float,
    fraction: float,
) -> None:
    bits = 16 * REGISTER_COUNT[rtype]
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if rtype.startswith("int")
        else (0, (1 << bits) - 1)
    )
    raw = low + round(fraction * (high - low))
    point = RegisterPoint(
        name="x",
        address=10,
        type=rtype,
        scale=scale,
        offset=offset,
        word_order=word_order,
        byte_order=byte_order,
    )
    modbus_map = ModbusMap(points=[point])
    value = raw * scale + offset
    (block,) = plan_reads(modbus_map)
    decoded = decode_block(block, encode_point(point, value, modbus_map), modbus_map)
    assert decoded.values["x"] == pytest.approx(value, rel=1e-12, abs=1e-9)


@given(
    value=st.floats(width=32, allow_nan=False, allow_infinity=False),
    word_order=st.sampled_from(list(Order)),
    byte_order=st.sampled_from(list(Order)),
)
def test_float32_values_survive_encode_then_decode(
    value: float, word_order: Order, byte_order: Order
) -> None:
    point = RegisterPoint(
        name="x", address=0, type=RegisterType.FLOAT32, word_order=word_order, byte_order=byte_order
    )
    modbus_map = ModbusMap(points=[point])
    (block,) = plan_reads(modbus_map)
    assert decode_block(block, encode_point(point, value, modbus_map), modbus_map).values == {
        "x": value
    }


@given(modbus_map=register_maps(with_flags=True))
def test_plan_reads_covers_every_readable_point_once_within_the_limits(
    modbus_map: ModbusMap,
) -> None:
    blocks = plan_reads(modbus_map)
    planned = [p.name for block in blocks for p in block.points]
    readable = [p.name for p in modbus_map.points if not p.write_only]
    assert sorted(planned) == sorted(readable)
    for block in blocks:
        limit = 2000 if block.table.is_bits else modbus_map.max_registers_per_read
        assert 1 <= block.count <= limit
        covered = set()
        for point in block.points:
            assert point.table is block.table
            assert block.start <= point.address
            assert point.address + point.register_count <= block.start + block.count
            covered.update(range(point.address, point.address + point.register_count))
        assert block.start in covered and block.start + block.count - 1 in covered
        holes = sorted(set(range(block.start, block.start + block.count)) - covered)
        runs = _run_lengths(holes)
        assert all(run <= modbus_map.max_gap * (16 if block.table.is_bits else 1) for run in runs)


def _run_lengths(addresses: list[int]) -> list[int]:
    runs: list[int] = []
    for index, address in enumerate(addresses):
        if index and address == addresses[index - 1] + 1:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


@given(
    registers=st.lists(register, min_size=1, max_size=8).filter(
        lambda words: b"\x00" not in b"".join(w.to_bytes(2, "big") for w in words)
    )
)
def test_string_points_agree_with_pymodbus(registers: list[int]) -> None:
    data = b"".join(w.to_bytes(2, "big") for w in registers)
    try:
        expected = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # pymodbus refuses what is not UTF-8; we replace it
    point = RegisterPoint(name="serial", address=0, type=RegisterType.STRING, length=len(registers))
    modbus_map = ModbusMap(points=[point])
    (block,) = plan_reads(modbus_map)
    pymodbus_text = ModbusTcpClient.convert_from_registers(registers, DATATYPE.STRING)
    assert pymodbus_text == expected
    assert decode_block(block, registers, modbus_map).texts == {"serial": expected.rstrip(" ")}


@given(
    value=st.integers(min_value=-(2**53), max_value=2**53),
    rtype=st.sampled_from([RegisterType.INT64, RegisterType.UINT64]),
    word_order=st.sampled_from(list(Order)),
)
def test_64_bit_integers_survive_encode_then_decode(
    value: int, rtype: RegisterType, word_order: Order
) -> None:
    value = abs(value) if rtype is RegisterType.UINT64 else value
    point = RegisterPoint(name="energy", address=0, type=rtype, word_order=word_order)
    modbus_map = ModbusMap(points=[point])
    (block,) = plan_reads(modbus_map)
    registers = encode_point(point, value, modbus_map)
    assert len(registers) == 4
    assert decode_block(block, registers, modbus_map).values == {"energy": value}


@given(
    registers=st.lists(register, min_size=1, max_size=1),
    bit=st.integers(min_value=0, max_value=12),
    bits=st.integers(min_value=1, max_value=4),
)
def test_a_bit_field_is_the_shifted_masked_register(registers: list[int], bit: int, bits: int):
    point = RegisterPoint(name="mode", address=0, type=RegisterType.UINT16, bit=bit, bits=bits)
    modbus_map = ModbusMap(points=[point])
    (block,) = plan_reads(modbus_map)
    expected = (registers[0] >> bit) & ((1 << bits) - 1)
    assert decode_block(block, registers, modbus_map).values == {"mode": expected}
    assert encode_point(point, expected, modbus_map) == [expected << bit]
