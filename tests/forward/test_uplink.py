"""HubUplink against a real Mosquitto with passwords and the per-gateway ACL."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from campus_config import HubBrokerSettings, TlsSettings
from campus_forward.outbox import Outbox
from campus_forward.uplink import HubUplink
from campus_protocol import codec
from campus_protocol.envelope import Envelope
from campus_protocol.messages import Command, MessageKind, PointStats, State, Telemetry
from campus_protocol.topics import downlink_topic, uplink_topic
from cloud_hub.broker import MosquittoBroker
from tests.broker_support import hub_port_client, mark_hub_session
from tests.edge.support import hub_listener, wait_until


def telemetry(value: float) -> Telemetry:
    stats = PointStats(count=1, min=value, max=value, mean=value, last=value)
    return Telemetry(
        device="meter-1",
        profile="eastron_sdm120",
        room="lab-3",
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
        window_end=datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC),
        points={"power": stats},
    )


def hub_settings(broker: MosquittoBroker, gateway: str = "gw-1") -> HubBrokerSettings:
    assert broker.ca_file is not None
    return HubBrokerSettings(
        host=broker.host,
        port=broker.port,
        password=broker.password_for(gateway),
        tls=TlsSettings(ca_file=broker.ca_file),
    )


async def stop(uplink: HubUplink, task: asyncio.Task[None]) -> None:
    uplink.close(grace_s=1.0)
    await asyncio.wait_for(task, 5)


async def test_gateway_publishes_outbox_rows_in_seq_order_and_deletes_them(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    seqs = [outbox.append(MessageKind.TELEMETRY, telemetry(v)) for v in (1, 2, 3)]
    uplink = HubUplink("gw-1", hub_settings(mosquitto_broker), outbox)

    async with hub_listener(mosquitto_broker) as received:
        task = asyncio.create_task(uplink.run())
        await wait_until(lambda: sum(e.kind is MessageKind.TELEMETRY for e in received) == 3)
        await stop(uplink, task)
        await wait_until(lambda: received[-1].body == State(online=False))

    kinds = [(e.kind, e.seq) for e in received]
    assert kinds[0][0] is MessageKind.STATE and received[0].body == State(online=True)
    assert [seq for kind, seq in kinds if kind is MessageKind.TELEMETRY] == seqs
    assert all(e.node == "gw-1" for e in received)
    assert outbox.depth() == 0
    assert uplink.published == {"telemetry": 3}
    outbox.close()


async def test_rows_stay_in_the_outbox_until_the_broker_acknowledges_them(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    async with hub_listener(mosquitto_broker):
        pass  # the hub's session exists before any gateway publishes
    mosquitto_broker.stop()
    uplink = HubUplink(
        "gw-1", hub_settings(mosquitto_broker), outbox, reconnect_min_s=0.1, reconnect_max_s=0.3
    )
    task = asyncio.create_task(uplink.run())
    for v in range(5):
        outbox.append(MessageKind.TELEMETRY, telemetry(v))
        uplink.wake()
    await asyncio.sleep(0.8)

    assert outbox.depth() == 5 and not uplink.connected and uplink.failed >= 1

    mosquitto_broker.start()
    async with hub_listener(mosquitto_broker) as received:
        await wait_until(lambda: outbox.depth() == 0)
        await wait_until(lambda: sum(e.kind is MessageKind.TELEMETRY for e in received) == 5)
        await stop(uplink, task)

    assert uplink.published == {"telemetry": 5}
    outbox.close()


async def test_clean_stop_leaves_retained_offline_state(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = HubUplink("gw-1", hub_settings(mosquitto_broker), outbox)
    task = asyncio.create_task(uplink.run())
    await wait_until(lambda: uplink.connected)
    await stop(uplink, task)

    async with hub_listener(mosquitto_broker) as received:
        await wait_until(lambda: bool(received))

    assert received[0].kind is MessageKind.STATE and received[0].body == State(online=False)
    outbox.close()


async def test_message_too_large_is_discarded_with_a_reason_not_retried(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.append(MessageKind.TELEMETRY, telemetry(1))
    uplink = HubUplink("gw-1", hub_settings(mosquitto_broker), outbox, max_message_bytes=200)
    task = asyncio.create_task(uplink.run())
    await wait_until(lambda: outbox.depth() == 0)
    await stop(uplink, task)

    assert uplink.discarded == {"too_large": 1}
    assert uplink.published == {}
    outbox.close()


async def test_corrupt_row_is_discarded_and_the_rows_behind_it_still_go_out(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    bad = outbox.append(MessageKind.TELEMETRY, telemetry(1))
    outbox.append(MessageKind.TELEMETRY, telemetry(2))
    db = sqlite3.connect(path)
    db.execute("UPDATE outbox SET body = ? WHERE seq = ?", (b'{"device": 1}', bad))
    db.commit()
    db.close()
    uplink = HubUplink("gw-1", hub_settings(mosquitto_broker), outbox)

    task = asyncio.create_task(uplink.run())
    await wait_until(lambda: outbox.depth() == 0)
    await stop(uplink, task)

    assert uplink.discarded == {"invalid_body": 1}
    assert uplink.published == {"telemetry": 1}
    outbox.close()


async def test_a_gateway_cannot_publish_into_another_gateways_topics(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    async with hub_listener(mosquitto_broker) as received:
        async with hub_port_client(mosquitto_broker, "gw-1") as gw1:
            forged = Envelope.wrap(node="gw-2", epoch="e1", seq=1, body=telemetry(666))
            await gw1.publish(
                uplink_topic("gw-2", MessageKind.TELEMETRY), codec.encode(forged), qos=1
            )
        # and the uplink, misconfigured as node gw-2 with gw-1's credentials, gets nowhere
        misconfigured = HubUplink(
            "gw-2",
            hub_settings(mosquitto_broker).model_copy(update={"username": "gw-1"}),
            outbox,
        )
        outbox.append(MessageKind.TELEMETRY, telemetry(667))
        task = asyncio.create_task(misconfigured.run())
        await wait_until(lambda: misconfigured.connected)
        await asyncio.sleep(0.5)
        await stop(misconfigured, task)
        await asyncio.sleep(0.3)

    assert [e for e in received if e.node == "gw-2"] == []
    outbox.close()


@pytest.mark.parametrize("password", ["wrong-password"])
async def test_wrong_password_is_refused_and_counted(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, password: str
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.append(MessageKind.TELEMETRY, telemetry(1))
    settings = hub_settings(mosquitto_broker).model_copy(update={"password": SecretStr(password)})
    uplink = HubUplink("gw-1", settings, outbox, reconnect_min_s=0.05, reconnect_max_s=0.1)
    task = asyncio.create_task(uplink.run())
    await wait_until(lambda: uplink.failed >= 2)
    await stop(uplink, task)

    assert not uplink.connected
    assert uplink.last_error is not None
    assert outbox.depth() == 1
    outbox.close()


async def test_on_a_broker_no_hub_has_used_rows_wait_for_the_hubs_session_and_commands_still_come(
    tmp_path: Path,
) -> None:
    broker = MosquittoBroker(tmp_path / "mosquitto", gateways=["gw-1"])
    broker.start()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.append(MessageKind.TELEMETRY, telemetry(1))
    uplink = HubUplink("gw-1", hub_settings(broker), outbox)
    commands: list[str] = []
    uplink.on_downlink = lambda topic, _payload: commands.append(topic)
    task = asyncio.create_task(uplink.run())
    try:
        await wait_until(lambda: uplink.waiting_for_hub)
        command = Command(id="c-1", name="action", args={"action": "fan_on"})
        envelope = Envelope.wrap(node="hub", epoch="e1", seq=1, body=command)
        async with hub_port_client(broker, broker.hub_username) as hub:
            await hub.publish(
                downlink_topic("gw-1", MessageKind.CMD), codec.encode(envelope), qos=1
            )
        await wait_until(lambda: bool(commands))
        await asyncio.sleep(1.5)
        assert uplink.connected and uplink.waiting_for_hub and outbox.depth() == 1

        mark_hub_session(broker)
        await wait_until(lambda: outbox.depth() == 0)
        assert not uplink.waiting_for_hub and uplink.published == {"telemetry": 1}
        assert commands == ["campus/v1/gw-1/down/cmd"]
    finally:
        await stop(uplink, task)
        outbox.close()
        broker.stop()
