"""What Mosquitto's durability setting costs and what it saves: QoS 1 messages published by a
gateway while the hub's persistent session is away, then ``kill -9`` of the broker and a restart.

For each setting (the time-based autosave many deployments use, and the shipped save after every
change) and queue size N it prints the gateway's publish rate (one message in flight at a time
after the first 64, as the agent's uplink does: it waits for PUBACKs) and how many of the N
acknowledged messages the hub receives after the restart. The time-based row is the limit: what
the broker does when it writes nothing.

    .venv/bin/python bench/broker_durability.py [N ...]
"""

from __future__ import annotations

import asyncio
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from campus_protocol import hub_subscription
from cloud_hub.broker import MosquittoBroker


def hub_port_client(broker: MosquittoBroker, username: str, **kwargs: object) -> aiomqtt.Client:
    """A client of the broker's TLS listener as ``username`` (the hub or a gateway)."""
    assert broker.ca_file is not None
    hub = username == broker.hub_username
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=broker.hub_password if hub else broker.password_for(username),
        tls_params=aiomqtt.TLSParameters(ca_certs=str(broker.ca_file)),
        **kwargs,  # type: ignore[arg-type]
    )


IN_FLIGHT = 64


async def publish(broker: MosquittoBroker, count: int) -> float:
    """Publish ``count`` QoS 1 messages as gw-1 with a bounded window in flight; msg/s."""
    window = asyncio.Semaphore(IN_FLIGHT)
    async with hub_port_client(broker, "gw-1", identifier="gw-1") as client:

        async def one(index: int) -> None:
            async with window:
                await client.publish("campus/v1/gw-1/up/telemetry", b"x" * 300, qos=1)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return count / (time.perf_counter() - started)


async def hub_session(broker: MosquittoBroker) -> aiomqtt.Client:
    return hub_port_client(
        broker, broker.hub_username, identifier=broker.hub_username, clean_session=False
    )


async def received_after_restart(broker: MosquittoBroker, expected: int) -> int:
    got = 0
    async with await hub_session(broker) as hub:
        await hub.subscribe(hub_subscription(), qos=1)
        try:
            async with asyncio.timeout(10):
                async for _message in hub.messages:
                    got += 1
                    if got >= expected:
                        break
        except TimeoutError:
            pass
    return got


async def run(every_change: bool, count: int, workdir: Path) -> tuple[float, int]:
    broker = MosquittoBroker(workdir, gateways=["gw-1"], save_every_change=every_change)
    broker.start()
    try:
        async with await hub_session(broker) as hub:
            await hub.subscribe(hub_subscription(), qos=1)  # the session, then the hub goes away
        rate = await publish(broker, count)
        broker.kill()
        broker.start()
        return rate, await received_after_restart(broker, count)
    finally:
        broker.stop()


def main() -> None:
    logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt warns about 64 pending publishes
    sizes = [int(arg) for arg in sys.argv[1:]] or [1000, 5000]
    print(f"machine: {platform.platform()}, Python {platform.python_version()}")
    print(f"{'autosave':<28}{'queued N':>10}{'publish msg/s':>16}{'survive kill -9':>18}")
    for count in sizes:
        for every_change, name in (
            (False, "every 60 s (time-based)"),
            (True, "after every change"),
        ):
            with tempfile.TemporaryDirectory() as tmp:
                rate, survived = asyncio.run(run(every_change, count, Path(tmp)))
            print(f"{name:<28}{count:>10}{rate:>16,.0f}{survived:>12}/{count}")


if __name__ == "__main__":
    main()
