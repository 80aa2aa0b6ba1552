"""MQTT plumbing shared by the edge agent and the hub: one client builder, one reconnect loop.

Reconnecting is the caller's job in aiomqtt ("reusable, but not reentrant"); every long-lived
MQTT link of the project (the agent's hub uplink and site subscription, the hub's ingest
consumer) runs through ``run_reconnecting`` so all of them back off, log and count alike.
"""

from campus_mqtt.backoff import Backoff
from campus_mqtt.client import BrokerEndpoint, ack, make_client
from campus_mqtt.link import LinkState, run_reconnecting

__all__ = ["Backoff", "BrokerEndpoint", "LinkState", "ack", "make_client", "run_reconnecting"]
