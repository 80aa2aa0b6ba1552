"""One Modbus connection or serial line, shared by every device (unit id) behind it.

A ``ModbusLink`` owns one pymodbus client: Modbus TCP, RTU on a serial line, or RTU frames over
a serial device server's TCP port. Requests go through ``request``, which holds the link's lock:
one request at a time per connection or line, so devices behind a gateway or on an RS-485 bus
take turns, while separate links run concurrently. The link connects on first use, waits the
profile's ``pause_after_connect_s`` after connecting and ``pause_between_requests_s`` between
requests, and is dropped (``close``) by its devices when the link is suspect; the next request
reconnects. Links built together share a ``connect_gate``: at most ``MAX_CONNECTING`` connection
attempts at a time, so thousands of devices starting (or coming back) together do not all time
out in one storm and retry in the next.

pymodbus exceptions become the ``ModbusSourceError`` family here, so the coordinator above sees
only named errors with a bounded ``error_type``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from device_profiles.schema import RegisterTable
from edge_agent.settings import ModbusEndpoint, ModbusTransport

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

#: exception codes a TCP-to-RTU gateway answers when no device answered it behind (no route, or the
#: unit id is silent on the line): the unit is as unreachable as one that times out
GATEWAY_NO_ANSWER = frozenset({10, 11})

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient
MAX_CONNECTING = 64
ClientFactory = Callable[[ModbusEndpoint, float], ModbusClient]
T = TypeVar("T")


class ModbusSourceError(Exception):
    """A request to a Modbus device failed; ``error_type`` is a bounded counter label."""

    error_type = "error"
    #: ``True`` when the link is suspect and the connection should be dropped and backed off.
    reconnect = True
    #: ``True`` when the device did not answer: retry with backoff, not at the poll interval.
    unreachable = True


class ModbusReadError(ModbusSourceError):
    """A Modbus exception response: the device is alive but refused, or (``GATEWAY_NO_ANSWER``)
    the gateway in front of it says the device did not answer (the link itself is fine)."""

    reconnect = False

    def __init__(self, *, device: str, unit: int, address: int, code: int, function_code: int = 0):
        self.device, self.unit, self.address, self.code = device, unit, address, code
        self.function_code = function_code
        self.unreachable = code in GATEWAY_NO_ANSWER
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
    """The connection or serial line could not be opened or was lost."""

    error_type = "connection"


class ModbusBadResponse(ModbusSourceError):
    """The device answered with data that does not fit the request."""

    error_type = "bad_response"


def default_client(endpoint: ModbusEndpoint, timeout_s: float) -> ModbusClient:
    """A pymodbus client that never retries or reconnects on its own: the coordinator does."""
    common: dict[str, Any] = {"timeout": timeout_s, "retries": 0, "reconnect_delay": 0}
    if endpoint.transport is ModbusTransport.RTU:
        assert endpoint.serial_port is not None
        return AsyncModbusSerialClient(
            endpoint.serial_port,
            framer=FramerType.RTU,
            baudrate=endpoint.baudrate,
            parity=endpoint.parity,
            stopbits=endpoint.stopbits,
            bytesize=endpoint.bytesize,
            **common,
        )
    framer = FramerType.RTU if endpoint.transport is ModbusTransport.RTU_OVER_TCP else None
    assert endpoint.host is not None
    return AsyncModbusTcpClient(
        endpoint.host, port=endpoint.port, framer=framer or FramerType.SOCKET, **common
    )


def check_response(response: object, *, device: str, unit: int, address: int) -> None:
    """Raise ``ModbusReadError`` when ``response`` is a Modbus exception response."""
    if response.isError():  # type: ignore[attr-defined]
        raise ModbusReadError(
            device=device,
            unit=unit,
            address=address,
            code=int(getattr(response, "exception_code", 0)),
            function_code=response.function_code & 0x7F,  # type: ignore[attr-defined]
        )


async def read_block(
    client: ModbusClient, *, device: str, unit: int, table: RegisterTable, start: int, count: int
) -> list[int]:
    """``count`` registers (or bits, as 0 and 1) of ``table`` from ``start`` on ``unit``.

    Raises ``ModbusReadError`` for an exception response (naming ``device``) and
    ``ModbusBadResponse`` for an answer of the wrong size."""
    read = {
        RegisterTable.HOLDING: client.read_holding_registers,
        RegisterTable.INPUT: client.read_input_registers,
        RegisterTable.COIL: client.read_coils,
        RegisterTable.DISCRETE_INPUT: client.read_discrete_inputs,
    }[table]
    response = await read(start, count=count, device_id=unit)
    check_response(response, device=device, unit=unit, address=start)
    values = (
        [int(bit) for bit in response.bits[:count]] if table.is_bits else list(response.registers)
    )
    if len(values) != count:
        raise ModbusBadResponse(
            f"{device}: unit {unit} {table.value} {start}+{count}: got {len(values)} values"
        )
    return values


class ModbusLink:
    """A shared connection or serial line: ``request`` runs one call at a time on it."""

    def __init__(
        self,
        endpoint: ModbusEndpoint,
        *,
        timeout_s: float,
        pause_after_connect_s: float = 0.0,
        pause_between_requests_s: float = 0.0,
        client_factory: ClientFactory = default_client,
        connect_gate: asyncio.Semaphore | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.connect_gate = connect_gate
        self.timeout_s = timeout_s
        self.pause_after_connect_s = pause_after_connect_s
        self.pause_between_requests_s = pause_between_requests_s
        self.units: set[int] = set()  # unit ids of the devices using this link
        self.connects = 0
        self._client_factory = client_factory
        self._client: ModbusClient | None = None
        self._lock = asyncio.Lock()
        self._last_request_at = float("-inf")

    @property
    def shared(self) -> bool:
        """More than one device talks through this link."""
        return len(self.units) > 1

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def close(self) -> None:
        """Drop the connection; the next request reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def connect(self, where: str) -> None:
        """Open the connection now rather than on the first request (``where`` prefixes errors)."""
        async with self._lock:
            await self._connected_client(where)

    async def request(
        self,
        where: str,
        call: Callable[[ModbusClient], Awaitable[T]],
        *,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``call`` with the link's client, alone on the link; raises ``ModbusSourceError``.

        ``call`` may make several requests (a write and its read-back are one exchange on the
        line); ``timeout_s`` bounds all of them. ``where`` prefixes error messages.
        """
        timeout = timeout_s or self.timeout_s
        async with self._lock:
            client = await self._connected_client(where)
            await self._pause_between_requests()
            try:
                async with asyncio.timeout(timeout + 0.5):
                    return await call(client)
            except (TimeoutError, ModbusIOException) as exc:
                raise ModbusTimeout(f"{where}: no response within {timeout:g} s") from exc
            except (ConnectionException, OSError) as exc:
                raise ModbusConnectError(f"{where}: connection lost ({exc})") from exc
            except ModbusException as exc:
                raise ModbusBadResponse(f"{where}: {exc}") from exc
            finally:
                self._last_request_at = asyncio.get_running_loop().time()

    async def _pause_between_requests(self) -> None:
        if self.pause_between_requests_s <= 0:
            return
        wait = self._last_request_at + self.pause_between_requests_s
        delay = wait - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _connected_client(self, where: str) -> ModbusClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        if self.connect_gate is None:
            return await self._connect(where)
        async with self.connect_gate:  # the timeout starts when this attempt's turn comes
            return await self._connect(where)

    async def _connect(self, where: str) -> ModbusClient:
        client = self._client_factory(self.endpoint, self.timeout_s)
        on = f"{where}: {self.endpoint.describe()}"
        try:
            async with asyncio.timeout(self.timeout_s + 0.5):
                connected = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise ModbusConnectError(f"{on}: cannot connect ({exc or type(exc).__name__})") from exc
        if not connected:
            client.close()
            raise ModbusConnectError(f"{on}: cannot connect")
        self._client = client
        self.connects += 1
        if self.pause_after_connect_s > 0:
            await asyncio.sleep(self.pause_after_connect_s)
        return client
