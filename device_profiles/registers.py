"""Modbus register maps as pure functions: plan coalesced reads, decode blocks, encode points.

Decoding is vectorised with numpy. Points of one block that share a type, word order and byte
order form a group: their registers are gathered into an ``(n, words)`` array whose columns are
already in high-word-first order, stored with the point's byte order, and read back with one
``np.frombuffer`` as big-endian values. The grouping is computed once per block and map defaults.

Value rules: ``value = raw * scale + offset``; a ``bit`` point is the ``bits``-wide field
``(raw >> bit) & (2**bits - 1)`` and a ``nonzero`` point is ``raw != 0`` (scale and offset not
applied to either); a ``value_map`` point reports the map's entry for its raw code (an unknown
code is invalid); a raw value among ``error_value`` (compared as signed or as the unsigned
register pattern) and a non-finite result are reported in ``invalid`` instead of ``values``.
Strings (``length`` registers, two bytes each, trailing NULs and spaces stripped) go to
``texts``; coils and discrete inputs read as 0/1.
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
    RegisterType.INT64: ">i8",
    RegisterType.UINT64: ">u8",
    RegisterType.FLOAT32: ">f4",
    RegisterType.FLOAT64: ">f8",
}
_STRUCT: dict[RegisterType, str] = {
    RegisterType.INT16: ">h",
    RegisterType.UINT16: ">H",
    RegisterType.INT32: ">i",
    RegisterType.UINT32: ">I",
    RegisterType.INT64: ">q",
    RegisterType.UINT64: ">Q",
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
    bit_mask: np.ndarray | None  # per point 2**bits - 1
    nonzero: np.ndarray | None  # per point flag; None when no point has one
    #: (position in the group, raw sentinels) of each point that has any
    sentinels: tuple[tuple[int, frozenset[float]], ...]
    #: (position in the group, raw code -> value) of each enumeration point
    value_maps: tuple[tuple[int, dict[int, float]], ...]
    unsigned_mask: int


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) from ``start`` in ``table``, and the
    points in it."""

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
    texts: dict[str, str] = field(default_factory=dict)


#: most coils or discrete inputs one read may ask for (Modbus application protocol 6.1, 6.2)
MAX_BITS_PER_READ = 2000


def plan_reads(modbus_map: ModbusMap) -> list[ReadBlock]:
    """Coalesce the readable points into as few reads as the map's limits allow.

    Per table, points are sorted by address and merged while the hole before the next point is
    at most ``max_gap`` registers (x16 for bits) and the block stays within
    ``max_registers_per_read`` (2,000 bits for coils and discrete inputs). A point is never split
    between blocks. ``write_only`` points are not read. The ``one_request_per_field`` quirk gives
    every point its own read.
    """
    blocks: list[ReadBlock] = []
    quirks = modbus_map.quirks
    for table in RegisterTable:
        max_gap = modbus_map.max_gap * 16 if table.is_bits else modbus_map.max_gap
        max_count = MAX_BITS_PER_READ if table.is_bits else modbus_map.max_registers_per_read
        points = sorted(
            (p for p in modbus_map.points if p.table is table and not p.write_only),
            key=lambda p: (p.address, p.register_count),
        )
        current: list[RegisterPoint] = []
        start = end = 0
        for point in points:
            point_end = point.address + point.register_count
            if current and (
                not quirks.one_request_per_field
                and point.address - end <= max_gap
                and max(end, point_end) - start <= max_count
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
        if point.is_text or point.type is RegisterType.BOOL:
            continue  # decoded one by one: _decode_text, _decode_bits
        key = (point.type, point.word_order or word_order, point.byte_order or byte_order)
        by_key.setdefault(key, []).append(point)
    groups = []
    for (rtype, words, bytes_), points in by_key.items():
        width = points[0].register_count
        index = np.array(
            [range(p.address - block.start, p.address - block.start + width) for p in points],
            dtype=np.intp,
        )
        if words is Order.LITTLE:
            index = index[:, ::-1]
        bits = [-1 if p.bit is None else p.bit for p in points]
        groups.append(
            _Group(
                names=tuple(p.name for p in points),
                dtype=np.dtype(_DTYPE[rtype]),
                word_dtype=np.dtype(">u2" if bytes_ is Order.BIG else "<u2"),
                index=np.ascontiguousarray(index),
                scale=np.array([p.scale for p in points], dtype=np.float64),
                offset=np.array([p.offset for p in points], dtype=np.float64),
                is_float=rtype in _FLOATS,
                bit=np.array(bits, dtype=np.int64) if any(b >= 0 for b in bits) else None,
                bit_mask=(
                    np.array([(1 << p.bits) - 1 for p in points], dtype=np.uint64)
                    if any(b >= 0 for b in bits)
                    else None
                ),
                nonzero=(
                    np.array([p.nonzero for p in points])
                    if any(p.nonzero for p in points)
                    else None
                ),
                sentinels=tuple(
                    (i, frozenset(p.sentinels)) for i, p in enumerate(points) if p.sentinels
                ),
                value_maps=tuple((i, p.value_map) for i, p in enumerate(points) if p.value_map),
                unsigned_mask=(1 << (16 * width)) - 1,
            )
        )
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
    """Decode every point of ``block`` from the registers (or bits) read for it.

    Raises ``RegisterBlockError`` when the registers do not match the block's length or are not
    16-bit values.
    """
    if block.table.is_bits:
        return _decode_bits(block, registers)
    regs = _as_registers(block, registers)
    result = DecodedValues()
    for group in block._groups(modbus_map):
        _decode_group(group, regs, result)
    for point in block.points:
        if point.is_text:
            result.texts[point.name] = _decode_text(point, regs, block, modbus_map)
    return result


def _decode_group(group: _Group, regs: np.ndarray, result: DecodedValues) -> None:
    raw = np.frombuffer(regs[group.index].astype(group.word_dtype).tobytes(), group.dtype)
    if group.is_float:
        out = raw.astype(np.float64) * group.scale + group.offset
    else:
        out = raw.astype(np.float64) * group.scale + group.offset
        if group.bit is not None:
            assert group.bit_mask is not None
            field_ = (raw.astype(np.uint64) >> np.maximum(group.bit, 0).astype(np.uint64)) & (
                group.bit_mask
            )
            out = np.where(group.bit >= 0, field_.astype(np.float64), out)
        if group.nonzero is not None:
            out = np.where(group.nonzero, raw != 0, out)
    bad = ~np.isfinite(out)
    if group.sentinels or group.value_maps:
        raws = raw.tolist()
        for position, sentinels in group.sentinels:
            value = raws[position]
            if value in sentinels or (
                not group.is_float and (value & group.unsigned_mask) in _patterns(sentinels, group)
            ):
                bad[position] = True
        for position, table in group.value_maps:
            mapped = table.get(raws[position])
            if mapped is None:
                bad[position] = True
            else:
                out[position] = mapped
    for name, value, invalid in zip(group.names, out.tolist(), bad.tolist(), strict=True):
        if invalid:
            result.invalid.append(name)
        else:
            result.values[name] = float(value)


def _patterns(sentinels: frozenset[float], group: _Group) -> set[int]:
    """Integer sentinels as unsigned register patterns (-1 matches 0xFFFF of an int16)."""
    return {int(v) & group.unsigned_mask for v in sentinels if float(v).is_integer()}


def _decode_text(
    point: RegisterPoint, regs: np.ndarray, block: ReadBlock, modbus_map: ModbusMap
) -> str:
    offset = point.address - block.start
    words = regs[offset : offset + point.register_count]
    if (point.word_order or modbus_map.word_order) is Order.LITTLE:
        words = words[::-1]
    little = (point.byte_order or modbus_map.byte_order) is Order.LITTLE
    data = words.astype("<u2" if little else ">u2").tobytes()
    return data.decode("utf-8", errors="replace").rstrip("\x00 ")


def _decode_bits(
    block: ReadBlock, bits: Sequence[int] | Sequence[bool] | np.ndarray
) -> DecodedValues:
    if len(bits) < block.count:
        raise RegisterBlockError(
            f"{block.table.value} block at {block.start}: got {len(bits)} bits,"
            f" expected {block.count}",
            reason="wrong_length",
        )
    result = DecodedValues()
    for point in block.points:
        result.values[point.name] = 1.0 if bits[point.address - block.start] else 0.0
    return result


def encode_point(point: RegisterPoint, value: float, modbus_map: ModbusMap) -> list[int]:
    """Engineering value -> the point's raw registers (the inverse of decoding one point).

    A ``bit`` point gives a register with only its field set to ``value``; a ``nonzero`` point
    gives raw 1 or 0; a ``bool`` point (coil) gives ``[0]`` or ``[1]``; a ``value_map`` point
    gives the raw code that maps to ``value``. Raises ``EncodeError`` when the value does not
    fit. Strings are encoded by ``encode_text``.
    """
    if point.is_text:
        raise EncodeError(f"{point.name}: a string point takes text (encode_text)")
    if point.type is RegisterType.BOOL:
        if value not in (0, 1):
            raise EncodeError(f"{point.name}: coil value must be 0 or 1 (got {value})")
        return [int(value)]
    raw: float
    if point.bit is not None:
        limit = (1 << point.bits) - 1
        if not float(value).is_integer() or not 0 <= value <= limit:
            wanted = (
                "flag value must be 0 or 1" if limit == 1 else f"bit field value must be 0..{limit}"
            )
            raise EncodeError(f"{point.name}: {wanted} (got {value})")
        raw = int(value) << point.bit
        if raw >= 1 << (16 * point.register_count - 1) and point.type.value.startswith("int"):
            raw -= 1 << (16 * point.register_count)  # the top bit of a signed value is its sign
    elif point.nonzero:
        if value not in (0, 1):
            raise EncodeError(f"{point.name}: flag value must be 0 or 1 (got {value})")
        raw = int(value)
    elif point.value_map is not None:
        codes = [code for code, mapped in point.value_map.items() if mapped == value]
        if not codes:
            known = sorted(point.value_map.values())
            raise EncodeError(f"{point.name}: {value} is none of the mapped values {known}")
        raw = codes[0]
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
    return _to_words(packed, point, modbus_map)


def encode_text(point: RegisterPoint, text: str, modbus_map: ModbusMap) -> list[int]:
    """A string point's registers for ``text`` (UTF-8, NUL-padded); raises ``EncodeError`` when
    it does not fit."""
    if not point.is_text:
        raise EncodeError(f"{point.name}: not a string point")
    data = text.encode()
    size = 2 * point.register_count
    if len(data) > size:
        raise EncodeError(f"{point.name}: {len(data)} bytes of text, room for {size}")
    return _to_words(data.ljust(size, b"\x00"), point, modbus_map)


def _to_words(packed: bytes, point: RegisterPoint, modbus_map: ModbusMap) -> list[int]:
    byteorder: Literal["big", "little"] = (
        "big" if (point.byte_order or modbus_map.byte_order) is Order.BIG else "little"
    )
    words = [int.from_bytes(packed[i : i + 2], byteorder) for i in range(0, len(packed), 2)]
    if (point.word_order or modbus_map.word_order) is Order.LITTLE:
        words.reverse()
    return words
