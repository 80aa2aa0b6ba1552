"""Modbus source: one ``DeviceCoordinator`` per device, and nothing else polls or writes.

A coordinator owns its device's poll interval, staggered first tick, timeout, capped
exponential backoff and the last good ``snapshot``. It reads the profile's register map in the
blocks ``device_profiles.registers.plan_reads`` coalesces, one request per block through its
``ModbusLink``. Devices behind the same TCP connection or serial line share one link and take
turns request by request, so a dead unit on a line costs one timeout (or one gateway "no answer"
exception) per attempt and backs off, while the other units keep their poll rate; separate links
run concurrently.

``write_point`` writes a coil or register through the same link, so it is serialised with
polling, reads the value back and returns a ``WriteResult`` saying what happened.

Failures are logged once when a device goes from OK to failing and once when it recovers;
every failure in between bumps ``campus_source_errors_total{protocol="modbus", error_type}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from device_profiles.errors import CodecError, EncodeError
from device_profiles.registers import ReadBlock, decode_block, encode_point, plan_reads
from device_profiles.schema import ModbusMap, Profile, RegisterPoint, RegisterTable
from edge_agent.health import (
    SOURCE_ERRORS,
    SOURCE_INVALID_VALUES,
    SOURCE_READINGS,
    SOURCE_WRITES,
)
from edge_agent.settings import DeviceConfig, ModbusEndpoint
from edge_agent.sources.base import (
    DeviceState,
    Emit,
    Reading,
    cancel_and_wait,
    raise_if_cancelling,
)
from edge_agent.sources.modbus_link import (
    EXCEPTION_NAMES,
    MAX_CONNECTING,
    ClientFactory,
    ModbusBadResponse,
    ModbusClient,
    ModbusConnectError,
    ModbusLink,
    ModbusReadError,
    ModbusSourceError,
    ModbusTimeout,
    check_response,
    default_client,
    read_block,
)

log = logging.getLogger(__name__)

PROTOCOL = "modbus"

__all__ = [
    "EXCEPTION_NAMES",
    "DeviceCoordinator",
    "ModbusBadResponse",
    "ModbusConnectError",
    "ModbusReadError",
    "ModbusSource",
    "ModbusSourceError",
    "ModbusTimeout",
    "WriteOutcome",
    "WriteResult",
    "build_coordinators",
]


class WriteOutcome(StrEnum):
    VERIFIED = "verified"  # written and read back equal
    MISMATCH = "mismatch"  # written, but the device reads back another value
    UNVERIFIED = "unverified"  # written to a write-only point: nothing to read back
    REJECTED = "rejected"  # refused before anything was sent (unknown point, not writable, range)
    FAILED = "failed"  # the device or the line failed (exception response, timeout, connection)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What ``DeviceCoordinator.write_point`` did. ``ok`` is true when the write reached the
    device and, where it can be read back, reads back as requested."""

    device: str
    point: str
    requested: float
    outcome: WriteOutcome
    read_back: float | None = None
    registers: tuple[int, ...] = ()  # raw words (or 0/1 for a coil) that were written
    error_type: str | None = None  # bounded code when rejected or failed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (WriteOutcome.VERIFIED, WriteOutcome.UNVERIFIED)


class DeviceCoordinator:
    """Polls one Modbus device (one unit id) and keeps its snapshot and availability."""

    def __init__(
        self,
        device: DeviceConfig,
        profile: Profile,
        *,
        link: ModbusLink | None = None,
        backoff_max_s: float = 60.0,
        client_factory: ClientFactory = default_client,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if device.modbus is None or profile.modbus is None:
            raise ValueError(f"{device.id}: DeviceCoordinator needs a modbus device and profile")
        self.device_id = device.id
        self.endpoint: ModbusEndpoint = device.modbus
        self.modbus_map: ModbusMap = profile.modbus
        self.unit = (
            self.endpoint.unit_id
            if self.endpoint.unit_id is not None
            else self.modbus_map.default_unit_id
        )
        self.poll_interval_s = self.endpoint.poll_interval_s or self.modbus_map.poll_interval_s
        self.timeout_s = self.endpoint.timeout_s or self.modbus_map.timeout_s
        self.backoff_max_s = max(backoff_max_s, self.poll_interval_s)
        self.blocks: list[ReadBlock] = plan_reads(self.modbus_map)
        self.points = {p.name: p for p in self.modbus_map.points}
        quirks = self.modbus_map.quirks
        self._owns_link = link is None
        self.link = link or ModbusLink(
            self.endpoint,
            timeout_s=self.timeout_s,
            pause_after_connect_s=quirks.pause_after_connect_s,
            pause_between_requests_s=quirks.pause_between_requests_s,
            client_factory=client_factory,
        )
        self.link.units.add(self.unit)
        self.state = DeviceState(
            device=device.id,
            profile=profile.id,
            room=device.room,
            room_name=device.room_name,
            protocol=PROTOCOL,
            _clock=clock,
        )
        self.snapshot: Reading | None = None
        self.texts: dict[str, str] = {}  # string points (serial numbers, firmware), last read
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def available(self) -> bool:
        return self.state.available is True

    @property
    def last_exception(self) -> BaseException | None:
        return self.state.last_exception

    @property
    def consecutive_failures(self) -> int:
        return self.state.consecutive_failures

    @property
    def last_ok_at(self) -> float | None:
        return self.state.last_ok_at

    async def refresh(self) -> Reading:
        """Poll the device once; updates state and ``snapshot``. Raises ``ModbusSourceError``."""
        try:
            reading = await self._poll()
        except ModbusSourceError as exc:
            if self._link_is_suspect(exc):
                self.link.close()
            self._record_failure(exc)
            raise
        finally:
            if self.modbus_map.quirks.close_after_poll:
                self.link.close()
        self._record_success(reading)
        return reading

    async def run(self, emit: Emit) -> None:
        """Poll forever: first tick after a random sub-second offset, then every interval."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._rng.random() * min(1.0, self.poll_interval_s))
        while True:
            started = loop.time()
            try:
                reading = await self.refresh()
            except ModbusSourceError as exc:
                delay = self.retry_delay(exc)
            except Exception:  # a bug of ours must not end this device's polling
                raise_if_cancelling()
                log.exception("%s: unexpected error while polling", self.device_id)
                SOURCE_ERRORS.labels(PROTOCOL, "internal").inc()
                self.link.close()
                delay = self.poll_interval_s
            else:
                emit(reading)
                delay = self.poll_interval_s
            raise_if_cancelling()
            await asyncio.sleep(max(0.0, started + delay - loop.time()))

    def retry_delay(self, exc: ModbusSourceError) -> float:
        """Next attempt after a failure: the poll interval when the device answered, else
        (no answer, or a gateway's "no answer" exception) capped exponential backoff with +-10 %
        jitter, so a dead unit costs its link fewer and fewer attempts."""
        if not exc.unreachable:
            return self.poll_interval_s
        exponent = min(self.state.consecutive_failures - 1, 16)
        base = min(self.poll_interval_s * 2**exponent, self.backoff_max_s)
        return base * self._rng.uniform(0.9, 1.1)

    def close(self) -> None:
        """Drop the connection when this coordinator owns it; the next poll reconnects."""
        if self._owns_link:
            self.link.close()

    async def write_point(self, point: str, value: float) -> WriteResult:
        """Write ``value`` (engineering units) to a writable coil or register and read it back.

        Serialised with polling on the device's link; the write and its read-back are one
        exchange on the line. A bit-field point is written read-modify-write, keeping the other
        bits of its register. Never raises for a bad value or a failing device: the result says.
        """
        spec = self.points.get(point)
        if spec is None or not spec.writable:
            known = sorted(p.name for p in self.points.values() if p.writable)
            why = "unknown point" if spec is None else "point is not writable"
            return self._write_result(
                point,
                value,
                WriteOutcome.REJECTED,
                error_type="not_writable",
                detail=f"{self.device_id}: {why} {point!r} (writable: {known})",
            )
        try:
            words = encode_point(spec, value, self.modbus_map)
        except EncodeError as exc:
            return self._write_result(
                point, value, WriteOutcome.REJECTED, error_type="invalid_value", detail=str(exc)
            )
        where = f"{self.device_id}: unit {self.unit} {spec.table.value} {spec.address} write"
        try:
            written, read_back = await self.link.request(
                where,
                lambda client: self._write_and_read_back(client, spec, words),
                timeout_s=3 * self.timeout_s,
            )
        except ModbusSourceError as exc:
            if self._link_is_suspect(exc):
                self.link.close()
            return self._write_result(
                point, value, WriteOutcome.FAILED, error_type=exc.error_type, detail=str(exc)
            )
        if read_back is None:
            return self._write_result(point, value, WriteOutcome.UNVERIFIED, registers=written)
        outcome = WriteOutcome.VERIFIED if _same(spec, value, read_back) else WriteOutcome.MISMATCH
        detail = (
            ""
            if outcome is WriteOutcome.VERIFIED
            else (f"{self.device_id}: {point} reads back {read_back:g} after writing {value:g}")
        )
        return self._write_result(
            point, value, outcome, read_back=read_back, registers=written, detail=detail
        )

    def _write_result(
        self, point: str, value: float, outcome: WriteOutcome, **fields: object
    ) -> WriteResult:
        SOURCE_WRITES.labels(PROTOCOL, outcome.value).inc()
        result = WriteResult(self.device_id, point, value, outcome, **fields)  # type: ignore[arg-type]
        if not result.ok:
            log.warning("write %s", result.detail or outcome.value)
        return result

    async def _write_and_read_back(
        self, client: ModbusClient, spec: RegisterPoint, words: list[int]
    ) -> tuple[tuple[int, ...], float | None]:
        where = f"{self.device_id}: unit {self.unit} {spec.table.value} {spec.address}"
        if spec.table is RegisterTable.COIL:
            self._check(
                await client.write_coil(spec.address, bool(words[0]), device_id=self.unit),
                spec.address,
            )
        else:
            if spec.bit is not None:  # read-modify-write: keep the register's other bits
                current = await self._read_raw(client, spec)
                mask = ((1 << spec.bits) - 1) << spec.bit
                merged = (_join(current) & ~mask) | (_join(words) & mask)
                words = _split(merged, len(words))
            if len(words) == 1:
                response = await client.write_register(spec.address, words[0], device_id=self.unit)
            else:
                response = await client.write_registers(spec.address, words, device_id=self.unit)
            self._check(response, spec.address)
        if spec.write_only:
            return tuple(words), None
        block = ReadBlock(spec.table, spec.address, spec.register_count, (spec,))
        try:
            decoded = decode_block(block, await self._read_raw(client, spec), self.modbus_map)
        except CodecError as exc:
            raise ModbusBadResponse(f"{where}: read-back: {exc}") from exc
        value = decoded.values.get(spec.name)
        return tuple(words), (math.nan if value is None else value)

    async def _read_raw(self, client: ModbusClient, spec: RegisterPoint) -> list[int]:
        block = ReadBlock(spec.table, spec.address, spec.register_count, (spec,))
        return await self._read_block(client, block)

    async def _poll(self) -> Reading:
        values: dict[str, float] = {}
        invalid = 0
        for block in self.blocks:
            where = (
                f"{self.device_id}: unit {self.unit} {block.table.value}"
                f" {block.start}+{block.count}"
            )
            registers = await self.link.request(
                where,
                lambda client, b=block: self._read_block(client, b),  # type: ignore[misc]
                timeout_s=self.timeout_s,
            )
            try:
                decoded = decode_block(block, registers, self.modbus_map)
            except CodecError as exc:
                raise ModbusBadResponse(f"{self.device_id}: {exc}") from exc
            values.update(decoded.values)
            if decoded.texts:
                self.texts.update(decoded.texts)
            invalid += len(decoded.invalid)
        if invalid:
            self.state.invalid_values += invalid
            SOURCE_INVALID_VALUES.labels(PROTOCOL).inc(invalid)
        return Reading(device=self.device_id, values=values, at=self._clock())

    async def _read_block(self, client: ModbusClient, block: ReadBlock) -> list[int]:
        return await read_block(
            client, device=self.device_id, unit=self.unit, table=block.table,
            start=block.start, count=block.count,
        )  # fmt: skip

    def _check(self, response: object, address: int) -> None:
        check_response(response, device=self.device_id, unit=self.unit, address=address)

    def _link_is_suspect(self, exc: ModbusSourceError) -> bool:
        """Drop the link on a lost connection, or on a timeout when no other device shares it
        (a silent unit on a shared line says nothing about the line)."""
        if isinstance(exc, ModbusTimeout):
            return not self.link.shared
        return exc.reconnect

    def _record_success(self, reading: Reading) -> None:
        state = self.state
        if state.available is False:
            log.info(
                "%s: recovered after %d failed polls (%.0f s)",
                self.device_id,
                state.consecutive_failures,
                state.failing_for_s(reading.at) or 0.0,
            )
        state.available = True
        state.last_ok_at = reading.at
        state.failing_since = None
        state.consecutive_failures = 0
        state.last_exception = None
        self.snapshot = reading
        SOURCE_READINGS.labels(PROTOCOL).inc()

    def _record_failure(self, exc: ModbusSourceError) -> None:
        state = self.state
        if state.available is not False:
            log.error("polling failed: %s", exc)
            state.failing_since = self._clock()
        state.available = False
        state.consecutive_failures += 1
        state.last_exception = exc
        SOURCE_ERRORS.labels(PROTOCOL, exc.error_type).inc()


def _same(spec: RegisterPoint, requested: float, read_back: float) -> bool:
    """Read-back equal to the request within what the register can hold."""
    if math.isnan(read_back):
        return False
    if spec.type.value.startswith("float"):
        return math.isclose(read_back, requested, rel_tol=1e-6, abs_tol=1e-9)
    step = 1.0 if spec.bit is not None or spec.nonzero or spec.value_map else abs(spec.scale)
    return abs(read_back - requested) <= step / 2 + 1e-9


def _join(words: Sequence[int]) -> int:
    value = 0
    for word in words:
        value = (value << 16) | word
    return value


def _split(value: int, count: int) -> list[int]:
    return [(value >> (16 * (count - 1 - i))) & 0xFFFF for i in range(count)]


def build_coordinators(
    devices: Sequence[tuple[DeviceConfig, Profile]],
    *,
    client_factory: ClientFactory = default_client,
    clock: Callable[[], float] = time.time,
) -> list[DeviceCoordinator]:
    """One coordinator per device; devices on the same connection or serial line share a link
    (the link takes the longest timeout and pauses of its devices' profiles), and all links
    share one gate of ``MAX_CONNECTING`` connection attempts at a time."""
    links: dict[tuple[str, str, int], ModbusLink] = {}
    gate = asyncio.Semaphore(MAX_CONNECTING)
    coordinators = []
    for device, profile in devices:
        assert device.modbus is not None and profile.modbus is not None
        quirks = profile.modbus.quirks
        timeout = device.modbus.timeout_s or profile.modbus.timeout_s
        link = links.get(device.modbus.link_key)
        if link is None:
            link = links[device.modbus.link_key] = ModbusLink(
                device.modbus,
                timeout_s=timeout,
                pause_after_connect_s=quirks.pause_after_connect_s,
                pause_between_requests_s=quirks.pause_between_requests_s,
                client_factory=client_factory,
                connect_gate=gate,
            )
        else:
            link.timeout_s = max(link.timeout_s, timeout)
            link.pause_after_connect_s = max(
                link.pause_after_connect_s, quirks.pause_after_connect_s
            )
            link.pause_between_requests_s = max(
                link.pause_between_requests_s, quirks.pause_between_requests_s
            )
        coordinators.append(DeviceCoordinator(device, profile, link=link, clock=clock))
    return coordinators


class ModbusSource:
    """Runs one coordinator task per Modbus device."""

    protocol = PROTOCOL

    def __init__(self, coordinators: list[DeviceCoordinator]) -> None:
        self.coordinators = coordinators
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, emit: Emit) -> None:
        self._tasks = [
            asyncio.create_task(c.run(emit), name=f"modbus:{c.device_id}")
            for c in self.coordinators
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        for coordinator in self.coordinators:
            coordinator.link.close()

    def device_states(self) -> list[DeviceState]:
        return [c.state for c in self.coordinators]

    def coordinator(self, device: str) -> DeviceCoordinator:
        """The coordinator of ``device`` (for writes); raises ``KeyError`` naming the known ids."""
        for coordinator in self.coordinators:
            if coordinator.device_id == device:
                return coordinator
        known = sorted(c.device_id for c in self.coordinators)
        raise KeyError(f"no Modbus device {device!r} (known: {known})")

    async def poll_once(self) -> list[tuple[DeviceCoordinator, Reading | ModbusSourceError]]:
        """Poll every device once, concurrently across links (``campus agent once``)."""

        async def one(c: DeviceCoordinator) -> Reading | ModbusSourceError:
            try:
                return await c.refresh()
            except ModbusSourceError as exc:
                return exc

        results = await asyncio.gather(*(one(c) for c in self.coordinators))
        for coordinator in self.coordinators:
            coordinator.link.close()
        return list(zip(self.coordinators, results, strict=True))
