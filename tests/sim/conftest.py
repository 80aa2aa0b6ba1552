"""Fixtures for the simulator tests: bundled profiles, a hand-driven clock, Modbus servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from pymodbus.client import AsyncModbusTcpClient

from device_profiles.loader import load_profiles
from device_profiles.schema import Profile
from simulators.modbus_server import ModbusSimServer, ServedUnit
from tests.sim.support import HandClock


@pytest.fixture(scope="session")
def profiles() -> dict[str, Profile]:
    return load_profiles()


@pytest.fixture
def clock() -> HandClock:
    return HandClock()


@pytest.fixture
async def modbus_server(
    clock: HandClock,
) -> AsyncIterator[Callable[[Sequence[ServedUnit]], Awaitable[ModbusSimServer]]]:
    """``await modbus_server(units)`` starts a server on a free port; all are stopped after."""
    started: list[ModbusSimServer] = []

    async def start(units: Sequence[ServedUnit]) -> ModbusSimServer:
        server = ModbusSimServer(units, clock=clock, port=0)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[AsyncModbusTcpClient]]]:
    """``await connect(port, wait_s=1.0)`` gives a connected client; all are closed after."""
    clients: list[AsyncModbusTcpClient] = []

    async def open_client(port: int, wait_s: float = 1.0) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=wait_s, retries=0)
        assert await client.connect()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()
