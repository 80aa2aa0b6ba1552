"""Modbus register maps as pure functions: plan coalesced reads, decode blocks, encode points.

Decoding is vectorised with numpy. Points of one block that share a type, word order and byte
order form a group: their registers are gathered into an ``(n, words)`` array whose columns are
already in high-word-first order, stored with the point's byte order, and read back with one
``np.frombuffer`` as big-endian values. The grouping is computed once per block and map defaults.

Value rules: ``value = raw * scale + offset``; a ``bit`` point is ``(raw >> bit) & 1`` and a
``nonzero`` point is ``raw != 0`` (both 0/1, scale and offset not applied); a raw value equal to
``error_value`` (compared as signed or as the unsigned register pattern) and a non-finite result
are reported in ``invalid`` instead of ``values``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from device_profiles.errors import EncodeError, RegisterBlockError
from device_profiles.schema import ModbusMap, Order, RegisterPoint, RegisterTable, RegisterType

#: register type -> big-endian numpy dtype of the whole value and struct code for encoding
_DTYPE: dict[RegisterType, str] = {
    RegisterType.INT16: ">i2",
    RegisterType.UINT16: ">u2",
    RegisterType.INT32: ">i4",
    RegisterType.UINT32: ">u4",
    RegisterType.FLOAT32: ">f4",
    RegisterType.FLOAT64: ">f8",
}
_STRUCT: dict[RegisterType, str] = {
    RegisterType.INT16: ">h",
    RegisterType.UINT16: ">H",
    RegisterType.INT32: ">i",
    RegisterType.UINT32: ">I",
    RegisterType.FLOAT32: ">f",
    RegisterType.FLOAT64: ">d",
}
_FLOATS = (RegisterType.FLOAT32, RegisterType.FLOAT64)


@dataclass(frozen=True)
class _Group:
    """Points of one block decoded together (same type, word order and byte order)."""

    names: tuple[str, ...]
    dtype: np.dtype
    word_dtype: np.dtype  # ">u2" (byte order big) or "<u2" (little)
    index: np.ndarray  # (n, words) offsets into the block, high word first
    scale: np.ndarray
    offset: np.ndarray
    is_float: bool
    bit: np.ndarray | None  # per point bit number, -1 for none; None when no point has one
    nonzero: np.ndarray | None  # per point flag; None when no point has one
    error_value: np.ndarray | None  # per point sentinel; None when no point has one
    has_error_value: np.ndarray | None
    unsigned_mask: int


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers from ``start`` in ``table``, and the points in it."""

    table: RegisterTable
    start: int
    count: int
    points: tuple[RegisterPoint, ...]
    _plans: dict[tuple[Order, Order], tuple[_Group, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def _groups(self, modbus_map: ModbusMap) -> tuple[_Group, ...]:
        key = (modbus_map.word_order, modbus_map.byte_order)
        groups = self._plans.get(key)
        if groups is None:
            groups = _build_groups(self, *key)
            self._plans[key] = groups
        return groups


@dataclass
class DecodedValues:
    """Engineering values by point name, and the names of points without a valid reading."""

    values: dict[str, float] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)


def plan_reads(modbus_map: ModbusMap) -> list[ReadBlock]:
    """Coalesce the readable points into as few reads as the map's limits allow.

    Per table, points are sorted by address and merged while the hole before the next point is
    at most ``max_gap`` registers and the block stays within ``max_registers_per_read``. A point
    is never split between blocks. ``write_only`` points are not read.
    """
    blocks: list[ReadBlock] = []
    for table in RegisterTable:
        points = sorted(
            (p for p in modbus_map.points if p.table is table and not p.write_only),
            key=lambda p: (p.address, p.register_count),
        )
        current: list[RegisterPoint] = []
        start = end = 0
        for point in points:
            point_end = point.address + point.register_count
            if current and (
                point.address - end <= modbus_map.max_gap
                and max(end, point_end) - start <= modbus_map.max_registers_per_read
            ):
                current.append(point)
                end = max(end, point_end)
                continue
            if current:
                blocks.append(ReadBlock(table, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point_end
        if current:
            blocks.append(ReadBlock(table, start, end - start, tuple(current)))
    return blocks


def _build_groups(block: ReadBlock, word_order: Order, byte_order: Order) -> tuple[_Group, ...]:
    by_key: dict[tuple[RegisterType, Order, Order], list[RegisterPoint]] = {}
    for point in block.points:
        key = (point.type, point.word_order or word_order, point.byte_order or byte_order)
        by_key.setdefault(key, []).append(point)
    groups = []
    for (rtype, words, bytes_), points in by_key.items():
        width = points[0].register_count
        index = np.array([range(p.address - block.start, p.address - block.start + width)
                          for p in points], dtype=np.intp)
        if words is Order.LITTLE:
            index = index[:, ::-1]
        bits = [-1 if p.bit is None else p.bit for p in points]
        errors = [p.error_value for p in points]
        groups.append(_Group(
            names=tuple(p.name for p in points),
            dtype=np.dtype(_DTYPE[rtype]),
            word_dtype=np.dtype(">u2" if bytes_ is Order.BIG else "<u2"),
            index=np.ascontiguousarray(index),
            scale=np.array([p.scale for p in points], dtype=np.float64),
            offset=np.array([p.offset for p in points], dtype=np.float64),
            is_float=rtype in _FLOATS,
            bit=np.array(bits, dtype=np.int64) if any(b >= 0 for b in bits) else None,
            nonzero=(np.array([p.nonzero for p in points])
                     if any(p.nonzero for p in points) else None),
            error_value=(np.array([e or 0 for e in errors], dtype=np.int64)
                         if any(e is not None for e in errors) else None),
            has_error_value=(np.array([e is not None for e in errors])
                             if any(e is not None for e in errors) else None),
            unsigned_mask=(1 << (16 * width)) - 1,
        ))
    return tuple(groups)


def _as_registers(block: ReadBlock, registers: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(registers)
    if arr.ndim != 1 or arr.shape[0] != block.count:
        raise RegisterBlockError(
            f"{block.table.value} block at {block.start}: got {arr.shape[0] if arr.ndim else 0}"
            f" registers, expected {block.count}",
            reason="wrong_length",
        )
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() > 0xFFFF:
        raise RegisterBlockError(
            f"{block.table.value} block at {block.start}: registers must be integers 0..65535",
            reason="out_of_range",
        )
    return arr.astype(np.uint16)


def decode_block(
    block: ReadBlock, registers: Sequence[int] | np.ndarray, modbus_map: ModbusMap
) -> DecodedValues:
    """Decode every point of ``block`` from the registers read for it.

    Raises ``RegisterBlockError`` when the registers do not match the block's length or are not
    16-bit values.
    """
    regs = _as_registers(block, registers)
    result = DecodedValues()
    for group in block._groups(modbus_map):
        raw = np.frombuffer(regs[group.index].astype(group.word_dtype).tobytes(), group.dtype)
        if group.is_float:
            out = raw.astype(np.float64) * group.scale + group.offset
            bad = ~np.isfinite(out)
        else:
            ints = raw.astype(np.int64)
            out = ints * group.scale + group.offset
            bad = ~np.isfinite(out)
            if group.error_value is not None:
                sentinel = group.error_value
                mask = group.unsigned_mask
                bad |= group.has_error_value & (
                    (ints == sentinel) | ((ints & mask) == (sentinel & mask))
                )
            if group.bit is not None:
                has_bit = group.bit >= 0
                out = np.where(has_bit, (ints >> np.maximum(group.bit, 0)) & 1, out)
            if group.nonzero is not None:
                out = np.where(group.nonzero, ints != 0, out)
        for name, value, invalid in zip(group.names, out.tolist(), bad.tolist(), strict=True):
            if invalid:
                result.invalid.append(name)
            else:
                result.values[name] = float(value)
    return result


def encode_point(point: RegisterPoint, value: float, modbus_map: ModbusMap) -> list[int]:
    """Engineering value -> the point's raw registers (the inverse of decoding one point).

    A ``bit`` point gives a register with only that bit set (value 1) or clear (value 0); a
    ``nonzero`` point gives raw 1 or 0. Raises ``EncodeError`` when the value does not fit.
    """
    if point.bit is not None or point.nonzero:
        if value not in (0, 1):
            raise EncodeError(f"{point.name}: flag value must be 0 or 1 (got {value})")
        raw: float = (1 << point.bit) if point.bit is not None and value else int(value)
        if raw >= 1 << 15 and point.type is RegisterType.INT16:
            raw -= 1 << 16  # bit 15 of a signed register is its sign bit
    else:
        raw = (value - point.offset) / point.scale
    if point.type not in _FLOATS:
        if not math.isfinite(raw):
            raise EncodeError(f"{point.name}: {value} is not finite")
        raw = round(raw)
    try:
        packed = struct.pack(_STRUCT[point.type], raw)
    except (struct.error, OverflowError):
        raise EncodeError(
            f"{point.name}: {value} gives raw {raw}, out of range for {point.type.value}"
        ) from None
    byteorder: Literal["big", "little"] = (
        "big" if (point.byte_order or modbus_map.byte_order) is Order.BIG else "little"
    )
    words = [int.from_bytes(packed[i : i + 2], byteorder) for i in range(0, len(packed), 2)]
    if (point.word_order or modbus_map.word_order) is Order.LITTLE:
        words.reverse()
    return words
