"""Shared test data and helpers for the edge tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.topics import hub_subscription, parse_topic
from cloud_hub.broker import MosquittoBroker
from cloud_hub.ingest.consumer import publish_hub_session
from device_profiles.schema import Profile
from tests.broker_support import hub_port_client
from tests.waiting import eventually

PROFILE = Profile.model_validate(
    {
        "id": "test_meter",
        "name": "Test meter",
        "domain": "energy",
        "protocol": "modbus",
        "modbus": {
            "poll_interval_s": 0.2,
            "timeout_s": 0.5,
            "max_gap": 4,
            "points": [
                {"name": "level", "address": 0, "type": "uint16"},
                {"name": "temperature", "address": 1, "type": "int16", "scale": 0.1, "unit": "°C"},
                {"name": "power", "address": 4, "type": "float32", "unit": "W"},
                {"name": "energy", "address": 100, "type": "uint32", "scale": 0.01},
                {"name": "lux", "address": 102, "type": "uint16", "error_value": 65535},
                {"name": "voltage", "table": "input", "address": 300, "type": "float32"},
            ],
        },
    }
)
VALUES = {
    "level": 200,
    "temperature": -12.5,
    "power": 1234.5,
    "energy": 98765.43,
    "lux": 420,
    "voltage": 229.75,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def hub_listener(broker: MosquittoBroker) -> AsyncIterator[list[Envelope]]:
    """Subscribe as the hub (persistent session, like the real hub: messages published while it
    is away are queued for it) and mark its session as the hub does (uplinks wait for that);
    yields the list that received envelopes are appended to."""
    received: list[Envelope] = []
    hub_client = hub_port_client(
        broker, broker.hub_username, identifier=broker.hub_username, clean_session=False
    )
    async with hub_client as hub:
        await hub.subscribe(hub_subscription(), qos=1)
        await publish_hub_session(hub, "regional")

        async def collect() -> None:
            async for message in hub.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                received.append(codec.decode(payload, topic=parse_topic(str(message.topic))))

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()


wait_until = eventually  # the edge tests' name for it
