"""One builder for every aiomqtt client of the project, and manual acknowledgement.

aiomqtt 2.x acknowledges a QoS 1 message as soon as it is queued for the application. A consumer
that must acknowledge only what it has committed (the hub's ingest) asks for ``manual_ack`` and
calls ``ack`` afterwards; both reach paho's own manual-ack API through aiomqtt's paho client,
which 2.x exposes as ``_client`` (pinned ``aiomqtt<3``: 3.0 drops paho).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiomqtt

from campus_config import TlsSettings


@dataclass(frozen=True, kw_only=True)
class BrokerEndpoint:
    """Where and as whom to connect: built from the agent's or the hub's broker settings."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = 30

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client TLS context trusting ``tls.ca_file``, with a client certificate when given."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    if tls.cert_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return context


def make_client(
    endpoint: BrokerEndpoint,
    *,
    identifier: str | None,
    persistent: bool = False,
    will: aiomqtt.Will | None = None,
    manual_ack: bool = False,
    timeout_s: float = 10.0,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """A client for ``endpoint``. ``persistent`` keeps the broker session (and the QoS 1 messages
    queued for it) across disconnects; it needs a stable ``identifier``."""
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=identifier,
        clean_session=not persistent,
        keepalive=endpoint.keepalive_s,
        tls_context=tls_context(endpoint.tls) if endpoint.tls is not None else None,
        will=will,
        timeout=timeout_s,
        max_inflight_messages=max_inflight,
    )
    if manual_ack:
        client._client.manual_ack_set(True)
    return client


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Acknowledge ``message`` (received with ``manual_ack``); a no-op for QoS 0 or when the
    connection is gone (the broker then redelivers it to the session)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)
