"""A pymodbus server for several simulated devices, one unit id each (pymodbus 3.16 SimDevice).

It speaks Modbus TCP, RTU over TCP (a serial device server's port) or RTU on a serial line (one
end of a ``simulators.serial_line.PtyPair``), chosen by ``transport``.

Every unit gets a ``SimDevice`` whose register tables span its profile's points (holes inside a
table read as 0, so coalesced reads across gaps work; only writable points accept writes).
The ``action`` callback runs on each request: reads re-encode the device's current values into
the table (``encode_point``), writes are decoded back to engineering values and applied to the
device, so a later read shows what the device did with them. Faults are applied here too; an
``offline`` unit's responses are dropped in ``trace_packet`` so the client times out.

A unit id with no device is answered as a real bus answers it: on Modbus TCP the server stands
for a gateway with RS-485 devices behind it, which answers exception 0x0B (gateway target device
failed to respond); on an RTU line, or through a serial device server's transparent port, nothing
answers and the client times out. Never a device's own exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from device_profiles.errors import EncodeError
from device_profiles.registers import ReadBlock, decode_block, encode_point
from device_profiles.schema import ModbusMap, RegisterPoint, RegisterTable
from simulators.devices import SimulatedDevice
from simulators.faults import ILLEGAL_DATA_ADDRESS, FaultKind
from simulators.signals import SimClock

log = logging.getLogger(__name__)

#: function code -> the register table it addresses
_TABLE_OF_FC: dict[int, RegisterTable] = {
    3: RegisterTable.HOLDING,
    6: RegisterTable.HOLDING,
    16: RegisterTable.HOLDING,
    22: RegisterTable.HOLDING,
    23: RegisterTable.HOLDING,
    4: RegisterTable.INPUT,
}
_MBAP_UNIT_OFFSET = 6  # transaction(2) protocol(2) length(2) unit(1)
_UNIT_OFFSET = {"tcp": _MBAP_UNIT_OFFSET, "rtu_over_tcp": 0, "rtu": 0}  # RTU frames start with it
#: pymodbus serves unit ids with no SimDevice of their own from the one with id 0
_EVERY_OTHER_UNIT = 0


class ModbusServerError(RuntimeError):
    """The server could not start (port in use, bad host) or was configured wrongly."""


@dataclass(frozen=True)
class ServedUnit:
    unit_id: int
    device: SimulatedDevice


def _gateway_no_response(packet: bytes) -> bytes:
    """A Modbus TCP response frame turned into exception 0x0B for the same request."""
    unit, function = packet[_MBAP_UNIT_OFFSET], packet[_MBAP_UNIT_OFFSET + 1] & 0x7F
    pdu = bytes((unit, function | 0x80, ExcCodes.GATEWAY_NO_RESPONSE))
    return packet[:4] + len(pdu).to_bytes(2, "big") + pdu  # transaction id, protocol 0, length


def _no_device() -> SimDevice:
    """Serves the unit ids no device has: nothing exists there, and ``_trace_packet`` rewrites
    or drops what it answers."""
    bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
    registers = _table_blocks([])
    return SimDevice(id=_EVERY_OTHER_UNIT, simdata=(bits, bits, registers, registers))


def _writable_addresses(points: Sequence[RegisterPoint]) -> set[int]:
    return {a for p in points if p.writable for a in range(p.address, p.address + p.register_count)}


def _table_blocks(points: Sequence[RegisterPoint]) -> list[SimData]:
    """SimData runs covering ``min(address)..max(end)``; writable registers are not read-only."""
    if not points:
        return [SimData(address=0, datatype=DataType.INVALID)]
    low = min(p.address for p in points)
    high = max(p.address + p.register_count for p in points)
    writable = _writable_addresses(points)
    blocks: list[SimData] = []
    start = low
    for address in range(low + 1, high + 1):
        if address == high or (address in writable) != (start in writable):
            blocks.append(
                SimData(
                    address=start,
                    values=[0] * (address - start),
                    datatype=DataType.REGISTERS,
                    readonly=start not in writable,
                )
            )
            start = address
    return blocks


class _Unit:
    """The request-time behaviour of one unit: refresh, writes and faults."""

    def __init__(self, unit_id: int, device: SimulatedDevice, clock: SimClock) -> None:
        modbus_map = device.profile.modbus
        if modbus_map is None:
            raise ModbusServerError(
                f"{device.device_id}: profile {device.profile.id} is not Modbus"
            )
        self.unit_id = unit_id
        self.device = device
        self.map: ModbusMap = modbus_map
        self.clock = clock
        self.rng = np.random.default_rng(device.seed)
        self.by_table = {
            table: [p for p in modbus_map.points if p.table is table] for table in RegisterTable
        }
        for fixed in device.fixed_values.items():  # fail at start, not on the first read
            self._encode(*fixed)

    def sim_device(self) -> SimDevice:
        bits = [SimData(address=0, values=[False] * 16, datatype=DataType.BITS)]
        return SimDevice(
            id=self.unit_id,
            simdata=(
                bits,
                list(bits),
                _table_blocks(self.by_table[RegisterTable.HOLDING]),
                _table_blocks(self.by_table[RegisterTable.INPUT]),
            ),
            action=self.action,
        )

    def _encode(self, name: str, value: float) -> list[int]:
        point = next(p for p in self.map.points if p.name == name)
        return encode_point(point, value, self.map)

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before serving a request; it may edit ``current_registers``."""
        fault = self.device.fault
        if fault is not None and fault.kind is FaultKind.OFFLINE:
            return ExcCodes.DEVICE_FAILURE  # never sent: trace_packet drops this unit's answers
        if fault is not None and fault.kind is FaultKind.EXCEPTION:
            return (
                ExcCodes.ILLEGAL_ADDRESS
                if fault.exception_code == ILLEGAL_DATA_ADDRESS
                else ExcCodes.DEVICE_FAILURE
            )
        table = _TABLE_OF_FC.get(function_code)
        if table is None:
            return None
        if set_values is not None and function_code != 4:
            self._apply_write(table, address, [int(v) for v in set_values])
        if fault is not None and fault.kind is FaultKind.GARBAGE:
            offset = address - start_address
            current_registers[offset : offset + count] = self.rng.integers(
                0, 0x10000, count
            ).tolist()
            return None
        self._refresh(table, start_address, current_registers)
        return None

    def _apply_write(self, table: RegisterTable, address: int, raw: list[int]) -> None:
        now = self.clock.now()
        end = address + len(raw)
        for point in self.by_table[table]:
            if (
                point.writable
                and address <= point.address
                and point.address + point.register_count <= end
            ):
                block = ReadBlock(table, point.address, point.register_count, (point,))
                offset = point.address - address
                decoded = decode_block(block, raw[offset : offset + point.register_count], self.map)
                for name, value in decoded.values.items():
                    self.device.write(name, value, now)

    def _refresh(self, table: RegisterTable, start: int, registers: list[int]) -> None:
        values = self.device.read(self.clock.now())
        flags: dict[int, int] = {}
        covered: set[int] = set()
        for point in self.by_table[table]:
            if point.write_only or point.name not in values:
                continue
            if point.bit is not None or point.nonzero:
                continue
            words = self._encode_or_keep(point, values[point.name])
            if words is not None:
                registers[point.address - start : point.address - start + len(words)] = words
            covered.add(point.address)
        for point in self.by_table[table]:
            if point.name not in values or point.address in covered:
                continue
            if point.bit is not None or point.nonzero:
                words = self._encode_or_keep(point, 1.0 if values[point.name] else 0.0)
                if words is not None:
                    flags[point.address] = flags.get(point.address, 0) | words[0]
        for address, word in flags.items():
            registers[address - start] = word

    def _encode_or_keep(self, point: RegisterPoint, value: float) -> list[int] | None:
        try:
            return encode_point(point, value, self.map)
        except EncodeError as exc:
            log.warning("%s: %s: keeping the previous registers", self.device.device_id, exc)
            return None


class ModbusSimServer:
    """One Modbus TCP server serving several simulated devices by unit id."""

    def __init__(
        self,
        units: Sequence[ServedUnit],
        *,
        clock: SimClock,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = "tcp",
        serial_port: str | None = None,
        baudrate: int = 115200,
    ) -> None:
        ids = [u.unit_id for u in units]
        if len(set(ids)) != len(ids):
            raise ModbusServerError(f"unit ids duplicated: {sorted(ids)}")
        if _EVERY_OTHER_UNIT in ids:
            raise ModbusServerError("unit id 0 is the broadcast address: serve units 1..247")
        if transport not in _UNIT_OFFSET:
            raise ModbusServerError(f"transport {transport!r}: one of {sorted(_UNIT_OFFSET)}")
        if (transport == "rtu") != (serial_port is not None):
            raise ModbusServerError("serial_port: required with transport rtu, and only with it")
        self.transport = transport
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.host = host
        self.requested_port = port
        self.clock = clock
        self.units = {u.unit_id: _Unit(u.unit_id, u.device, clock) for u in units}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise ModbusServerError("server not started")
        return self._port

    def device(self, unit_id: int) -> SimulatedDevice:
        return self.units[unit_id].device

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        offset = _UNIT_OFFSET[self.transport]
        if sending and len(packet) > offset + 1:
            unit = self.units.get(packet[offset])
            if unit is None:
                return _gateway_no_response(packet) if self.transport == "tcp" else b""
            if unit.device.fault is not None and unit.device.fault.kind is FaultKind.OFFLINE:
                return b""
        return packet

    async def start(self) -> None:
        context = [unit.sim_device() for unit in self.units.values()] + [_no_device()]
        if self.transport == "rtu":
            assert self.serial_port is not None
            serial = ModbusSerialServer(
                context,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                trace_packet=self._trace_packet,
            )
            await serial.serve_forever(background=True)
            self._server = serial
            return
        server = ModbusTcpServer(
            context=context,
            address=(self.host, self.requested_port),
            framer=FramerType.RTU if self.transport == "rtu_over_tcp" else FramerType.SOCKET,
            trace_packet=self._trace_packet,
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ModbusServerError(f"{self.host}:{self.requested_port}: {exc}") from None
        listener = server.transport
        sockets = getattr(listener, "sockets", None)
        if not sockets:
            await server.shutdown()
            raise ModbusServerError(f"could not listen on {self.host}:{self.requested_port}")
        self._port = int(sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            await asyncio.sleep(0)

    async def __aenter__(self) -> ModbusSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
