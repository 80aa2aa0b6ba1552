"""Decoded points per second: numpy ``decode_block`` vs a naive per-point ``struct.unpack`` loop.

Run: ``.venv/bin/python bench/decode.py [--rounds 10000]``. Decodes the Eastron SDM120 map (six
float32 points in three blocks, as the agent polls it) and a wide block (120 uint16 registers,
e.g. a DALI gateway's status range), and prints machine info with the figures.
"""

from __future__ import annotations

import argparse
import platform
import random
import struct
import sys
import time
from collections.abc import Callable

import numpy as np

from device_profiles.loader import load_profiles
from device_profiles.registers import ReadBlock, decode_block, plan_reads
from device_profiles.schema import ModbusMap, Order, RegisterPoint, RegisterType

_CODES = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def naive_decode(block: ReadBlock, registers: list[int], modbus_map: ModbusMap) -> dict[str, float]:
    """The obvious loop: one struct.unpack per point (big-endian bytes only)."""
    values = {}
    for p in block.points:
        at = p.address - block.start
        words = registers[at : at + p.register_count]
        if (p.word_order or modbus_map.word_order) is Order.LITTLE:
            words = words[::-1]
        raw = struct.unpack(">" + _CODES[p.type], struct.pack(f">{len(words)}H", *words))[0]
        values[p.name] = raw * p.scale + p.offset
    return values


def measure(label: str, decode: Callable[[], object], points: int, rounds: int) -> None:
    start = time.perf_counter()
    for _ in range(rounds):
        decode()
    elapsed = time.perf_counter() - start
    print(
        f"  {label:<34} {points * rounds / elapsed:>12,.0f} points/s"
        f"  ({elapsed / rounds * 1e6:7.1f} µs per map)"
    )


def run(name: str, modbus_map: ModbusMap, rounds: int) -> None:
    blocks = plan_reads(modbus_map)
    rng = random.Random(1)
    data = [[rng.randrange(0x3F00, 0x4400) for _ in range(b.count)] for b in blocks]
    arrays = [np.array(d, dtype=np.uint16) for d in data]
    points = sum(len(b.points) for b in blocks)
    print(f"{name}: {points} points in {len(blocks)} blocks, {rounds:,} rounds")
    measure(
        "decode_block (numpy, list input)",
        lambda: [decode_block(b, d, modbus_map) for b, d in zip(blocks, data, strict=True)],
        points,
        rounds,
    )
    measure(
        "decode_block (numpy, uint16 array)",
        lambda: [decode_block(b, a, modbus_map) for b, a in zip(blocks, arrays, strict=True)],
        points,
        rounds,
    )
    measure(
        "naive struct.unpack per point",
        lambda: [naive_decode(b, d, modbus_map) for b, d in zip(blocks, data, strict=True)],
        points,
        rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    rounds = parser.parse_args().rounds
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"machine: {platform.platform()} {platform.machine()}"
        f" ({platform.processor() or 'cpu unknown'})"
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    eastron = load_profiles()["eastron_sdm120"].modbus
    assert eastron is not None
    run("eastron_sdm120", eastron, rounds)
    wide = ModbusMap(
        points=[
            RegisterPoint(name=f"r{i}", address=i, type=RegisterType.UINT16, scale=0.1)
            for i in range(120)
        ]
    )
    run("wide block, 120 x uint16", wide, max(rounds // 10, 1))


if __name__ == "__main__":
    main()
