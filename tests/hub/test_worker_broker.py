"""IngestWorker against a real Mosquitto: connected as "hub", fed by a gateway at QoS 1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campus_mqtt import Backoff
from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import SeenSeq, TelemetryWindow
from cloud_hub.ingest.consumer import IngestConsumer
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import BrokerSettings, TlsSettings
from device_profiles.schema import Profile
from tests.broker_support import hub_port_client
from tests.hub.builders import T0, stats, telemetry
from tests.waiting import DEADLINE_S, eventually

WorkerFactory = Callable[[], contextlib.AbstractAsyncContextManager[IngestConsumer]]


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    create_schema(engine)
    return make_sessionmaker(engine)


@pytest.fixture
def start_worker(
    mosquitto_broker: MosquittoBroker,
    sqlite_sessions: sessionmaker[Session],
    profiles: dict[str, Profile],
) -> WorkerFactory:
    """Run a consumer as user "hub" (over TLS; client id = username) until the context exits."""
    assert mosquitto_broker.ca_file is not None
    broker = BrokerSettings(
        host=mosquitto_broker.host,
        port=mosquitto_broker.port,
        username=mosquitto_broker.hub_username,
        password=mosquitto_broker.hub_password,
        tls=TlsSettings(ca_file=mosquitto_broker.ca_file),
    )

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[IngestConsumer]:
        consumer = IngestConsumer(
            IngestWorker(sqlite_sessions, profiles=profiles), broker, backoff=Backoff(0.1, 1.0)
        )
        task = asyncio.create_task(consumer.run())
        try:
            await asyncio.wait_for(consumer.connected.wait(), DEADLINE_S)
            yield consumer
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return running


async def publish_as(broker: MosquittoBroker, gateway: str, *messages: tuple[str, bytes]) -> None:
    async with hub_port_client(broker, gateway) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def windows_stored(
    sessions: sessionmaker[Session], expected: int, wait_s: float = DEADLINE_S
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        with sessions() as session:
            stored = session.scalar(select(func.count()).select_from(TelemetryWindow)) or 0
        if stored >= expected or loop.time() > deadline:
            return stored
        await asyncio.sleep(0.05)


async def test_telemetry_published_by_a_gateway_lands_in_the_database(
    mosquitto_broker: MosquittoBroker,
    start_worker: WorkerFactory,
    sqlite_sessions: sessionmaker[Session],
) -> None:
    async with start_worker() as consumer:
        worker = consumer.worker
        await publish_as(mosquitto_broker, "gw-1", telemetry(seq=1, points={"co2": stats(640)}))

        assert await windows_stored(sqlite_sessions, 1) == 1
        assert worker.accepted == 1


async def test_the_worker_survives_a_broker_restart_and_keeps_ingesting(
    mosquitto_broker: MosquittoBroker,
    start_worker: WorkerFactory,
    sqlite_sessions: sessionmaker[Session],
) -> None:
    async with start_worker() as consumer:
        worker = consumer.worker
        await publish_as(mosquitto_broker, "gw-1", telemetry(seq=1, points={"co2": stats(1)}))
        assert await windows_stored(sqlite_sessions, 1) == 1
        # restart only once seq 1 is acknowledged (committed is not enough: a restart between
        # COMMIT and PUBACK redelivers it, a second, legitimate, duplicate)
        await eventually(lambda: consumer.acknowledged == 1, what="seq 1 acknowledged")

        connects = consumer.link.connects
        await asyncio.to_thread(mosquitto_broker.restart)  # the consumer notices while it happens
        await eventually(lambda: consumer.link.connects > connects, what="the consumer reconnects")
        again = telemetry(seq=2, points={"co2": stats(2)}, start=T0 + timedelta(minutes=1))
        await publish_as(mosquitto_broker, "gw-1", again, again)

        assert await windows_stored(sqlite_sessions, 2) == 2
        await eventually(lambda: worker.duplicates == 1, what="the resent seq 2 seen as duplicate")
        assert worker.accepted == 2


async def test_messages_published_while_the_worker_is_away_arrive_when_it_returns(
    mosquitto_broker: MosquittoBroker,
    start_worker: WorkerFactory,
    sqlite_sessions: sessionmaker[Session],
) -> None:
    """The persistent session (stable client id, clean_session False) queues QoS 1 messages."""
    async with start_worker():
        pass  # subscribes once, then goes away
    await publish_as(mosquitto_broker, "gw-1", telemetry(seq=1, points={"co2": stats(1)}))

    async with start_worker() as returning:
        assert await windows_stored(sqlite_sessions, 1) == 1
        assert returning.worker.accepted == 1


async def test_the_consumer_prunes_claims_older_than_the_retention(
    mosquitto_broker: MosquittoBroker,
    start_worker: WorkerFactory,
    sqlite_sessions: sessionmaker[Session],
    profiles: dict[str, Profile],
) -> None:
    old = IngestWorker(sqlite_sessions, profiles=profiles)
    old.process(*telemetry(seq=7, points={"co2": stats(1)}, epoch="old"), now=T0)

    async with start_worker() as consumer:
        fresh = telemetry(seq=1, points={"co2": stats(2)}, start=T0 + timedelta(minutes=1))
        await publish_as(mosquitto_broker, "gw-1", fresh)
        await eventually(lambda: consumer.claims_pruned == 1, what="the old claim pruned")

    with sqlite_sessions() as session:
        assert list(session.execute(select(SeenSeq.epoch, SeenSeq.seq))) == [("epoch-1", 1)]
