"""The hub listener speaks TLS: only clients that trust the broker's CA get to talk MQTT to it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from campus_config import HubBrokerSettings
from campus_config import TlsSettings as AgentTlsSettings
from campus_forward.outbox import Outbox
from campus_forward.uplink import HubUplink
from campus_protocol import MessageKind, hub_subscription, uplink_topic
from cloud_hub.broker import MosquittoBroker
from cloud_hub.certs import make_dev_certificates
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.consumer import IngestConsumer
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import BrokerSettings
from cloud_hub.settings import TlsSettings as HubTlsSettings
from tests.broker_support import hub_port_client


async def test_a_client_that_trusts_the_dev_ca_connects_and_publishes(
    mosquitto_broker: MosquittoBroker,
) -> None:
    async with hub_port_client(mosquitto_broker, "hub") as hub:
        await hub.subscribe(hub_subscription(), qos=1)
        async with hub_port_client(mosquitto_broker, "gw-1") as gw1:
            await gw1.publish(uplink_topic("gw-1", MessageKind.STATE), b"over-tls", qos=1)
        message = await asyncio.wait_for(anext(hub.messages), 2)

    assert message.payload == b"over-tls"


async def test_a_plain_tcp_client_cannot_talk_mqtt_to_the_tls_port(
    mosquitto_broker: MosquittoBroker,
) -> None:
    plain = aiomqtt.Client(
        mosquitto_broker.host,
        mosquitto_broker.port,
        username="gw-1",
        password=mosquitto_broker.password_for("gw-1"),
        timeout=1,
    )
    # the broker reads the CONNECT packet as the start of a TLS handshake: no CONNACK ever comes
    with pytest.raises(aiomqtt.MqttError):
        async with plain:
            pass


@pytest.mark.parametrize("trusted", ["another dev CA", "the system CAs"])
async def test_a_client_that_does_not_trust_the_broker_ca_is_refused(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, trusted: str
) -> None:
    other_ca = make_dev_certificates(tmp_path / "other-ca").ca_file
    ca_certs = str(other_ca) if trusted == "another dev CA" else None
    client = aiomqtt.Client(
        mosquitto_broker.host,
        mosquitto_broker.port,
        username="gw-1",
        password=mosquitto_broker.password_for("gw-1"),
        tls_params=aiomqtt.TLSParameters(ca_certs=ca_certs),
        timeout=2,
    )
    with pytest.raises(aiomqtt.MqttError, match="certificate verify failed"):
        async with client:
            pass


async def test_the_site_listener_stays_plain_and_anonymous(
    mosquitto_broker: MosquittoBroker,
) -> None:
    assert mosquitto_broker.site_port is not None
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port) as device:
        await device.publish("site/recorder/state", b"{}", qos=1)


async def test_tls_can_be_switched_off_for_debugging(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "mosquitto", gateways=["gw-1"], tls=False)
    broker.start()
    try:
        assert broker.ca_file is None
        async with aiomqtt.Client(
            broker.host, broker.port, username="gw-1", password=broker.password_for("gw-1")
        ) as gw1:
            await gw1.publish(uplink_topic("gw-1", MessageKind.STATE), b"{}", qos=1)
    finally:
        broker.stop()


async def test_an_agent_uplink_reaches_the_hub_ingest_worker_over_tls(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    assert mosquitto_broker.ca_file is not None
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    create_schema(engine)
    worker = IngestWorker(make_sessionmaker(engine))
    consumer = IngestConsumer(
        worker,
        BrokerSettings(
            host=mosquitto_broker.host,
            port=mosquitto_broker.port,
            password=mosquitto_broker.hub_password,
            tls=HubTlsSettings(ca_file=mosquitto_broker.ca_file),
        ),
    )
    ingest = asyncio.create_task(consumer.run())
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = HubUplink(
        "gw-1",
        HubBrokerSettings(
            host=mosquitto_broker.host,
            port=mosquitto_broker.port,
            password=mosquitto_broker.password_for("gw-1"),
            tls=AgentTlsSettings(ca_file=mosquitto_broker.ca_file),
        ),
        outbox,
    )
    sending = asyncio.create_task(uplink.run())
    try:
        await asyncio.wait_for(consumer.connected.wait(), 5)
        async with asyncio.timeout(5):
            while worker.accepted < 1:  # noqa: ASYNC110 (the uplink's "online" state)
                await asyncio.sleep(0.05)
        assert uplink.connected and uplink.failed == 0
    finally:
        uplink.close(grace_s=1.0)
        await asyncio.wait_for(sending, 5)
        ingest.cancel()
        await asyncio.gather(ingest, return_exceptions=True)
        outbox.close()
        engine.dispose()
