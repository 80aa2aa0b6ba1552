"""The hub broker's security config: a password per gateway and an ACL per node id (over TLS)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from campus_protocol import (
    HUB_SESSION_TOPIC,
    HubSession,
    MessageKind,
    downlink_topic,
    hub_subscription,
    uplink_topic,
)
from tests.broker_support import hub_port_client
from tests.waiting import DEADLINE_S


async def next_payloads(messages: aiomqtt.client.MessagesIterator, wait_s: float) -> list[bytes]:
    received: list[bytes] = []
    try:
        while True:
            message = await asyncio.wait_for(anext(messages), wait_s)
            received.append(bytes(message.payload))  # type: ignore[arg-type]
    except TimeoutError:
        return received


async def test_gateway_cannot_publish_into_another_gateways_topics(mosquitto_broker):
    async with hub_port_client(mosquitto_broker, "hub") as hub:
        await hub.subscribe(hub_subscription(), qos=1)
        async with hub_port_client(mosquitto_broker, "gw-1") as gw1:
            await gw1.publish(uplink_topic("gw-2", MessageKind.TELEMETRY), b"forged", qos=1)
            await gw1.publish(uplink_topic("gw-1", MessageKind.TELEMETRY), b"own", qos=1)
        assert await next_payloads(hub.messages, 1.0) == [b"own"]


async def test_gateway_reads_only_its_own_downlink(mosquitto_broker):
    async with (
        hub_port_client(mosquitto_broker, "gw-1") as gw1,
        hub_port_client(mosquitto_broker, "hub") as hub,
    ):
        await gw1.subscribe("campus/v1/+/down/#", qos=1)
        await hub.publish(downlink_topic("gw-2", MessageKind.CMD), b"for-gw-2", qos=1)
        await hub.publish(downlink_topic("gw-1", MessageKind.CMD), b"for-gw-1", qos=1)
        assert await next_payloads(gw1.messages, 1.0) == [b"for-gw-1"]


async def test_gateway_cannot_read_other_gateways_uplink(mosquitto_broker):
    async with (
        hub_port_client(mosquitto_broker, "gw-2") as gw2,
        hub_port_client(mosquitto_broker, "gw-1") as gw1,
    ):
        await gw2.subscribe(hub_subscription(), qos=1)
        await gw1.publish(uplink_topic("gw-1", MessageKind.TELEMETRY), b"private", qos=1)
        assert await next_payloads(gw2.messages, 1.0) == []


@pytest.mark.parametrize(("user", "password"), [("gw-1", "wrong"), ("gw-9", "anything"), ("", "")])
async def test_bad_credentials_are_refused(mosquitto_broker, user, password):
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user"):
        async with hub_port_client(mosquitto_broker, user, password):
            pass


async def test_gateway_added_later_can_connect_after_reload(mosquitto_broker):
    password = mosquitto_broker.add_gateway("gw-3")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:  # SIGHUP is asynchronous: refused until Mosquitto has re-read its files
        try:
            async with hub_port_client(mosquitto_broker, "gw-3", password) as gw3:
                await gw3.publish(uplink_topic("gw-3", MessageKind.STATE), b"{}", qos=1)
            return
        except aiomqtt.MqttError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_an_anonymous_site_client_can_neither_inject_uplinks_nor_read_the_wire_contract(
    mosquitto_broker,
):
    assert mosquitto_broker.site_port
    site = aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.site_port)
    async with (
        hub_port_client(mosquitto_broker, "hub") as hub,
        hub_port_client(mosquitto_broker, "gw-1") as gw1,
        site,
    ):
        await hub.subscribe(hub_subscription(), qos=1)
        await site.subscribe("campus/#", qos=1)
        await site.subscribe("sensors/#", qos=1)
        await site.publish(uplink_topic("gw-1", MessageKind.EVENT), b"injected", qos=1)
        await gw1.publish(uplink_topic("gw-1", MessageKind.TELEMETRY), b"private", qos=1)
        await site.publish("sensors/room-1/data", b"device data", qos=1)

        assert await next_payloads(hub.messages, 1.0) == [b"private"]
        assert await next_payloads(site.messages, 0.5) == [b"device data"]


async def test_every_gateway_reads_the_hubs_session_marker_and_none_can_forge_it(mosquitto_broker):
    async with hub_port_client(mosquitto_broker, "gw-1") as gw1:
        await gw1.publish(HUB_SESSION_TOPIC, b"forged", qos=1, retain=True)
    async with hub_port_client(mosquitto_broker, "gw-2") as gw2:
        await gw2.subscribe(HUB_SESSION_TOPIC, qos=1)
        (marker,) = await next_payloads(gw2.messages, 1.0)  # the hub's, left by the fixture

    assert HubSession.model_validate_json(marker).role == "regional"
