"""Raw registers decoded every way a device's map might mean them, to find an unknown map.

Pure: builds a throw-away register map with one point per (address, type, word order, byte
order) and decodes it with ``device_profiles.registers``, the same code the agent polls with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from device_profiles.registers import decode_block, plan_reads
from device_profiles.schema import (
    NUMBER_TYPES,
    REGISTER_COUNT,
    ModbusMap,
    Order,
    RegisterPoint,
    RegisterTable,
    RegisterType,
)

#: the four layouts of a multi-register value, named by where bytes A (most significant)..D go
LAYOUTS: dict[str, tuple[Order, Order]] = {
    "ABCD": (Order.BIG, Order.BIG),  # high word first, bytes big-endian (Modbus default)
    "CDAB": (Order.LITTLE, Order.BIG),  # low word first ("word swap")
    "BADC": (Order.BIG, Order.LITTLE),  # bytes swapped in each word
    "DCBA": (Order.LITTLE, Order.LITTLE),
}


@dataclass(frozen=True)
class Interpretation:
    """One way to read the value that starts at ``address``."""

    address: int
    type: RegisterType
    layout: str  # "AB"/"BA" for 16-bit types, a LAYOUTS key for wider ones
    value: float | None  # None when the bits are not a finite number (NaN, inf)

    @property
    def column(self) -> str:
        return f"{self.type.value} {self.layout}"


def interpret(
    registers: Sequence[int], *, start: int, types: Sequence[RegisterType] | None = None
) -> list[Interpretation]:
    """Every type x layout that fits at every address of ``registers`` (read from ``start``)."""
    wanted = list(types or NUMBER_TYPES)
    points: list[RegisterPoint] = []
    labels: dict[str, tuple[int, RegisterType, str]] = {}
    for offset in range(len(registers)):
        for rtype in wanted:
            if offset + REGISTER_COUNT[rtype] > len(registers):
                continue
            layouts = (
                {"AB": (Order.BIG, Order.BIG), "BA": (Order.BIG, Order.LITTLE)}
                if REGISTER_COUNT[rtype] == 1
                else LAYOUTS
            )
            for layout, (words, bytes_) in layouts.items():
                name = f"p{len(points)}"
                labels[name] = (start + offset, rtype, layout)
                points.append(
                    RegisterPoint(
                        name=name, address=start + offset, type=rtype,
                        word_order=words, byte_order=bytes_, table=RegisterTable.HOLDING,
                    )
                )  # fmt: skip
    if not points:
        return []
    modbus_map = ModbusMap(points=points, max_registers_per_read=125, max_gap=0)
    decoded = {}
    for block in plan_reads(modbus_map):
        offset = block.start - start
        result = decode_block(block, list(registers[offset : offset + block.count]), modbus_map)
        decoded.update(result.values)
    return [
        Interpretation(address, rtype, layout, decoded.get(name))
        for name, (address, rtype, layout) in labels.items()
    ]
