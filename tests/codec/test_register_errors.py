"""Bad register input and impossible values fail with named errors."""

from __future__ import annotations

import numpy as np
import pytest

from device_profiles.errors import EncodeError, RegisterBlockError
from device_profiles.registers import decode_block, encode_point, plan_reads
from device_profiles.schema import ModbusMap, RegisterPoint, RegisterType

POINT = RegisterPoint(name="co2", address=0, type=RegisterType.UINT16, unit="ppm")
FLAG = RegisterPoint(name="alarm", address=1, type=RegisterType.UINT16, bit=6)
MAP = ModbusMap(points=[POINT, FLAG])
(BLOCK,) = plan_reads(MAP)


def test_a_block_of_the_wrong_length_is_a_register_block_error() -> None:
    with pytest.raises(RegisterBlockError) as excinfo:
        decode_block(BLOCK, [1], MAP)
    assert excinfo.value.reason == "wrong_length"
    assert str(excinfo.value) == "wrong_length: holding block at 0: got 1 registers, expected 2"


@pytest.mark.parametrize("registers", [[1, 70000], [-1, 0], [1.5, 2.0]])
def test_registers_outside_0_to_65535_are_rejected(registers: list[float]) -> None:
    with pytest.raises(RegisterBlockError) as excinfo:
        decode_block(BLOCK, registers, MAP)
    assert excinfo.value.reason == "out_of_range"


def test_a_numpy_uint16_block_decodes_like_a_list() -> None:
    as_list = decode_block(BLOCK, [650, 0x0040], MAP)
    as_array = decode_block(BLOCK, np.array([650, 0x0040], dtype=np.uint16), MAP)
    assert as_list == as_array
    assert as_list.values == {"co2": 650.0, "alarm": 1.0}


def test_encoding_a_value_the_type_cannot_hold_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="out of range for uint16"):
        encode_point(POINT, 70000, MAP)
    with pytest.raises(EncodeError, match="out of range for uint16"):
        encode_point(POINT, -1, MAP)


def test_a_flag_point_encodes_only_0_or_1() -> None:
    assert encode_point(FLAG, 1, MAP) == [0x0040]
    assert encode_point(FLAG, 0, MAP) == [0]
    with pytest.raises(EncodeError, match="must be 0 or 1"):
        encode_point(FLAG, 2, MAP)


def test_encoding_nan_into_an_integer_point_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="not finite"):
        encode_point(POINT, float("nan"), MAP)


def test_the_sign_bit_of_a_signed_register_can_be_set_as_a_flag() -> None:
    sign = RegisterPoint(name="fault", address=0, type=RegisterType.INT16, bit=15)
    signed_map = ModbusMap(points=[sign])
    (block,) = plan_reads(signed_map)
    registers = encode_point(sign, 1, signed_map)
    assert registers == [0x8000]
    assert decode_block(block, registers, signed_map).values == {"fault": 1.0}
