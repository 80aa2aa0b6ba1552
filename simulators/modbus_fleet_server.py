"""A lean Modbus TCP server for scale runs: many devices, one port each, in one process.

Every device holds ``registers`` holding registers (and the same image as input registers),
rewritten every ``update_s`` seconds with big-endian float32 values that change each time, so a
poller sees fresh values every second. It answers read holding/input registers (functions 03 and
04) straight from a bytes image, with no per-request object building: one server process can
serve thousands of requests per second, leaving the CPU to the poller being measured. Anything
else gets exception 01 (illegal function). The profile-driven ``ModbusSimServer`` remains the
simulator of real device types; this one exists to load a gateway.

    python -m simulators.modbus_fleet_server --first-port 20000 --devices 500
"""

from __future__ import annotations

import asyncio
import math
import signal
import struct
import time
from dataclasses import dataclass, field

import numpy as np
import typer

_MBAP = struct.Struct(">HHHB")  # transaction, protocol, length, unit
_READ = struct.Struct(">BHH")  # function, address, count


@dataclass
class FleetImage:
    """The register image of every device: row ``d`` is device ``d``'s registers."""

    devices: int
    registers: int = 16
    data: list[bytes] = field(default_factory=list)
    generation: int = 0

    def refresh(self, now: float) -> None:
        """New float32 values: device d, value v = d + v/10 + the current second (big-endian)."""
        values = self.registers // 2
        grid = (
            np.arange(self.devices, dtype=np.float64)[:, None]
            + np.arange(values, dtype=np.float64)[None, :] / 10
            + math.floor(now) % 1000
        )
        raw = grid.astype(">f4").tobytes()
        row = 4 * values
        self.data = [raw[d * row : (d + 1) * row] for d in range(self.devices)]
        self.generation += 1


class _DeviceProtocol(asyncio.Protocol):
    def __init__(self, image: FleetImage, index: int, stats: dict[str, int]) -> None:
        self.image = image
        self.index = index
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 7:
            transaction, _, length, unit = _MBAP.unpack_from(self.buffer)
            end = 6 + length
            if len(self.buffer) < end:
                return
            pdu = self.buffer[7:end]
            self.buffer = self.buffer[end:]
            self._answer(transaction, unit, pdu)

    def _answer(self, transaction: int, unit: int, pdu: bytes) -> None:
        assert self.transport is not None
        function = pdu[0] if pdu else 0
        if function in (3, 4) and len(pdu) == 5:
            _, address, count = _READ.unpack(pdu)
            row = self.image.data[self.index]
            start, stop = 2 * address, 2 * (address + count)
            if stop <= len(row) and count >= 1:
                body = bytes((function, 2 * count)) + row[start:stop]
                self.stats["reads"] += 1
            else:
                body = bytes((function | 0x80, 2))  # illegal data address
        else:
            body = bytes((function | 0x80, 1))  # illegal function
        self.transport.write(_MBAP.pack(transaction, 0, len(body) + 1, unit) + body)


async def serve_fleet(
    first_port: int,
    devices: int,
    *,
    host: str = "127.0.0.1",
    update_s: float = 1.0,
    registers: int = 16,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, int]:
    """Serve ``devices`` devices on ``first_port``.. until ``stop`` is set; returns counts."""
    image = FleetImage(devices, registers)
    image.refresh(time.time())
    stats = {"reads": 0}
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda i=index: _DeviceProtocol(image, i, stats),  # type: ignore[misc]
            host,
            first_port + index,
            backlog=16,
        )
        for index in range(devices)
    ]
    if ready is not None:
        ready.set()
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            now = time.time()
            try:
                async with asyncio.timeout(update_s - now % update_s):
                    await stop.wait()
            except TimeoutError:
                image.refresh(time.time())
    finally:
        for server in servers:
            server.close()
    return stats


def main(
    first_port: int = typer.Option(..., help="Port of device 0; device d listens on first+d."),
    devices: int = typer.Option(..., min=1, max=20000, help="How many devices."),
    host: str = typer.Option("127.0.0.1", help="Listen address."),
) -> None:
    """Serve a fleet of Modbus TCP devices (8 float32 values each) until SIGTERM or Ctrl-C."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = asyncio.Event()
        task = asyncio.create_task(
            serve_fleet(first_port, devices, host=host, ready=ready, stop=stop)
        )
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():  # a port was taken: say so, and exit non-zero
            waiting.cancel()
            try:
                await task
            except OSError as exc:
                print(f"cannot serve: {exc}", flush=True)
                raise typer.Exit(1) from None
        print(
            f"serving {devices} devices on {host}:{first_port}..{first_port + devices - 1}",
            flush=True,
        )
        stats = await task
        print(f"served {stats['reads']} reads", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    typer.run(main)
