"""Modbus TCP source: one ``DeviceCoordinator`` per device, and nothing else polls.

A coordinator owns its device's connection, poll interval, staggered first tick, timeout,
capped exponential backoff and the last good ``snapshot``. It reads the profile's register map
in the blocks ``device_profiles.registers.plan_reads`` coalesces (one request per block), so a
dead device costs one timeout per attempt and the other coordinators keep going.

Failures are logged once when a device goes from OK to failing and once when it recovers;
every failure in between bumps ``campus_source_errors_total{protocol="modbus", error_type}``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from device_profiles.errors import CodecError
from device_profiles.registers import ReadBlock, decode_block, plan_reads
from device_profiles.schema import ModbusMap, Profile, RegisterTable
from edge_agent.health import SOURCE_ERRORS, SOURCE_INVALID_VALUES, SOURCE_READINGS
from edge_agent.settings import DeviceConfig, ModbusTcpEndpoint
from edge_agent.sources.base import (
    DeviceState,
    Emit,
    Reading,
    cancel_and_wait,
    raise_if_cancelling,
)

log = logging.getLogger(__name__)

PROTOCOL = "modbus"

#: Modbus exception code -> name used in messages; its snake_case form labels the error counter.
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusSourceError(Exception):
    """A poll of a Modbus device failed; ``error_type`` is a bounded counter label."""

    error_type = "error"
    #: ``True`` when the link is suspect and the connection should be dropped and backed off.
    reconnect = True


class ModbusReadError(ModbusSourceError):
    """The device answered with a Modbus exception response (it is alive but refused the read)."""

    reconnect = False

    def __init__(self, *, device: str, unit: int, address: int, code: int, function_code: int = 0):
        self.device, self.unit, self.address, self.code = device, unit, address, code
        self.function_code = function_code
        self.name = EXCEPTION_NAMES.get(code, f"exception code {code}")
        self.error_type = (
            self.name.replace(" ", "_") if code in EXCEPTION_NAMES else "exception_other"
        )
        super().__init__(
            f"{device}: unit {unit} address {address}: {self.name} (exception code {code})"
        )


class ModbusTimeout(ModbusSourceError):
    """The device did not answer within its timeout."""

    error_type = "timeout"


class ModbusConnectError(ModbusSourceError):
    """The TCP connection could not be opened or was lost."""

    error_type = "connection"


class ModbusBadResponse(ModbusSourceError):
    """The device answered with registers that do not fit the read plan."""

    error_type = "bad_response"


ClientFactory = Callable[[ModbusTcpEndpoint, float], AsyncModbusTcpClient]


def default_client(endpoint: ModbusTcpEndpoint, timeout_s: float) -> AsyncModbusTcpClient:
    """A pymodbus client that never retries or reconnects on its own: the coordinator does."""
    return AsyncModbusTcpClient(
        endpoint.host, port=endpoint.port, timeout=timeout_s, retries=0, reconnect_delay=0
    )


class DeviceCoordinator:
    """Polls one Modbus TCP device and keeps its last good snapshot and availability."""

    def __init__(
        self,
        device: DeviceConfig,
        profile: Profile,
        *,
        backoff_max_s: float = 60.0,
        client_factory: ClientFactory = default_client,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if device.modbus is None or profile.modbus is None:
            raise ValueError(f"{device.id}: DeviceCoordinator needs a modbus device and profile")
        self.device_id = device.id
        self.endpoint: ModbusTcpEndpoint = device.modbus
        self.modbus_map: ModbusMap = profile.modbus
        self.unit = (
            self.endpoint.unit_id
            if self.endpoint.unit_id is not None
            else (self.modbus_map.default_unit_id)
        )
        self.poll_interval_s = self.endpoint.poll_interval_s or self.modbus_map.poll_interval_s
        self.timeout_s = self.endpoint.timeout_s or self.modbus_map.timeout_s
        self.backoff_max_s = max(backoff_max_s, self.poll_interval_s)
        self.blocks: list[ReadBlock] = plan_reads(self.modbus_map)
        self.state = DeviceState(
            device=device.id,
            profile=profile.id,
            room=device.room,
            room_name=device.room_name,
            protocol=PROTOCOL,
            _clock=clock,
        )
        self.snapshot: Reading | None = None
        self._client_factory = client_factory
        self._client: AsyncModbusTcpClient | None = None
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
            if exc.reconnect:
                self.close()
            self._record_failure(exc)
            raise
        self._record_success(reading)
        return reading

    async def run(self, emit: Emit) -> None:
        """Poll forever: first tick after a random sub-second offset, then every interval."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._rng.random())
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
                self.close()
                delay = self.poll_interval_s
            else:
                emit(reading)
                delay = self.poll_interval_s
            raise_if_cancelling()
            await asyncio.sleep(max(0.0, started + delay - loop.time()))

    def retry_delay(self, exc: ModbusSourceError) -> float:
        """Next attempt after a failure: the poll interval when the device answered, else
        capped exponential backoff with +-10 % jitter."""
        if not exc.reconnect:
            return self.poll_interval_s
        exponent = min(self.state.consecutive_failures - 1, 16)
        base = min(self.poll_interval_s * 2**exponent, self.backoff_max_s)
        return base * self._rng.uniform(0.9, 1.1)

    def close(self) -> None:
        """Drop the connection; the next poll reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _poll(self) -> Reading:
        client = await self._connected_client()
        values: dict[str, float] = {}
        invalid = 0
        for block in self.blocks:
            registers = await self._read(client, block)
            try:
                decoded = decode_block(block, registers, self.modbus_map)
            except CodecError as exc:
                raise ModbusBadResponse(f"{self.device_id}: {exc}") from exc
            values.update(decoded.values)
            invalid += len(decoded.invalid)
        if invalid:
            self.state.invalid_values += invalid
            SOURCE_INVALID_VALUES.labels(PROTOCOL).inc(invalid)
        return Reading(device=self.device_id, values=values, at=self._clock())

    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = self._client_factory(self.endpoint, self.timeout_s)
        where = f"{self.device_id}: {self.endpoint.host}:{self.endpoint.port}"
        try:
            async with asyncio.timeout(self.timeout_s + 0.5):
                connected = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise ModbusConnectError(
                f"{where}: cannot connect ({exc or type(exc).__name__})"
            ) from exc
        if not connected:
            client.close()
            raise ModbusConnectError(f"{where}: cannot connect")
        self._client = client
        return client

    async def _read(self, client: AsyncModbusTcpClient, block: ReadBlock) -> Sequence[int]:
        read = (
            client.read_holding_registers
            if block.table is RegisterTable.HOLDING
            else client.read_input_registers
        )
        where = (
            f"{self.device_id}: unit {self.unit} {block.table.value} {block.start}+{block.count}"
        )
        try:
            async with asyncio.timeout(self.timeout_s + 0.5):
                response = await read(block.start, count=block.count, device_id=self.unit)
        except (TimeoutError, ModbusIOException) as exc:
            raise ModbusTimeout(f"{where}: no response within {self.timeout_s:g} s") from exc
        except (ConnectionException, OSError) as exc:
            raise ModbusConnectError(f"{where}: connection lost ({exc})") from exc
        except ModbusException as exc:
            raise ModbusBadResponse(f"{where}: {exc}") from exc
        if response.isError():
            raise ModbusReadError(
                device=self.device_id,
                unit=self.unit,
                address=block.start,
                code=int(getattr(response, "exception_code", 0)),
                function_code=response.function_code & 0x7F,
            )
        return response.registers

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
            coordinator.close()

    def device_states(self) -> list[DeviceState]:
        return [c.state for c in self.coordinators]

    async def poll_once(self) -> list[tuple[DeviceCoordinator, Reading | ModbusSourceError]]:
        """Poll every device once, concurrently (``campus agent once``)."""

        async def one(c: DeviceCoordinator) -> Reading | ModbusSourceError:
            try:
                return await c.refresh()
            except ModbusSourceError as exc:
                return exc
            finally:
                c.close()

        results = await asyncio.gather(*(one(c) for c in self.coordinators))
        return list(zip(self.coordinators, results, strict=True))
