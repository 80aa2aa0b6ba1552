"""Parts of ``campus demo``: the port check, the uplink relay, the status line."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime

from campus_cli.demo import _port_is_free
from campus_cli.demo_status import status_line
from campus_cli.uplink_proxy import UplinkProxy


def test_a_port_just_released_by_a_closed_connection_counts_as_free() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its port sits in TIME_WAIT
        client.close()
    assert _port_is_free(port)


def test_a_port_someone_listens_on_is_not_free() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert not _port_is_free(server.getsockname()[1])


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_the_uplink_relay_passes_traffic_until_cut_and_again_once_restored() -> None:
    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = UplinkProxy("127.0.0.1", target.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"reading 1")
        assert await reader.read(100) == b"reading 1"

        await proxy.cut()

        assert await asyncio.wait_for(reader.read(100), 2) == b""  # the open link drops
        try:
            await asyncio.open_connection("127.0.0.1", proxy.port)
            raise AssertionError("a cut uplink accepted a connection")
        except ConnectionRefusedError:
            pass
        await proxy.restore()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"reading 2")
        assert await reader.read(100) == b"reading 2"
        writer.close()
    finally:
        await proxy.close()
        target.close()
        await target.wait_closed()


def test_status_line_names_problem_schools_alert_levels_backlog_and_pokes() -> None:
    schools = [
        {"id": "d1-s01", "status": "degraded"},
        {"id": "d1-s02", "status": "online"},
        {"id": "d2-s01", "status": "offline"},
    ]
    alerts = [{"severity": "II"}, {"severity": "II"}, {"severity": "IV"}]

    line = status_line(
        datetime(2026, 11, 23, 10, 2, 11), schools, alerts, backlog=42,
        active=["d1-s01/r101-air: offline"], restarts=1,
    )  # fmt: skip

    assert line == (
        "10:02:11  3 schools: 1 online, 1 degraded (d1-s01), 1 offline (d2-s01)"
        " | 3 active alerts: 2 orange, 1 blue | outbox backlog 42 | 1 agent restarts"
        " | poked: d1-s01/r101-air: offline"
    )
