"""Commands reach a gateway only from the hub's identity: the broker ACL lets no gateway write a
downlink, its own or another's, so an agent reading ``down/cmd`` hears the hub alone."""

from __future__ import annotations

from campus_protocol import MessageKind, downlink_topic
from tests.broker.test_mosquitto_acl import next_payloads
from tests.broker_support import hub_port_client


async def test_only_the_hub_can_send_a_gateway_commands_or_config(mosquitto_broker):
    async with (
        hub_port_client(mosquitto_broker, "gw-2") as gw2,
        hub_port_client(mosquitto_broker, "gw-1") as gw1,
        hub_port_client(mosquitto_broker, "hub") as hub,
    ):
        await gw2.subscribe("campus/v1/gw-2/down/#", qos=1)
        for kind in (MessageKind.CMD, MessageKind.CONFIG):
            await gw1.publish(downlink_topic("gw-2", kind), b"forged by gw-1", qos=1)
            await gw2.publish(downlink_topic("gw-2", kind), b"forged by gw-2 itself", qos=1)
        await hub.publish(downlink_topic("gw-2", MessageKind.CMD), b"from the hub", qos=1)

        assert await next_payloads(gw2.messages, 1.0) == [b"from the hub"]
