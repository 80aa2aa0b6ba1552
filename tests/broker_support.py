"""Clients for the test broker's hub listener, which speaks TLS with the broker's dev CA."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiomqtt

from cloud_hub.broker import MosquittoBroker
from cloud_hub.ingest.consumer import publish_hub_session


def hub_tls_params(broker: MosquittoBroker) -> aiomqtt.TLSParameters:
    """aiomqtt TLS parameters that trust the broker's development CA."""
    assert broker.ca_file is not None, "this broker's hub listener was started with tls=False"
    return aiomqtt.TLSParameters(ca_certs=str(broker.ca_file))


def hub_port_client(
    broker: MosquittoBroker, username: str, password: str | None = None, **kwargs: Any
) -> aiomqtt.Client:
    """An aiomqtt client for the hub listener over TLS; the password defaults to the user's."""
    if password is None:
        password = (
            broker.hub_password
            if username == broker.hub_username
            else broker.password_for(username)
        )
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=password,
        tls_params=hub_tls_params(broker),
        **kwargs,
    )


def mark_hub_session(broker: MosquittoBroker) -> None:
    """Leave the hub's retained session marker on ``broker``, as a hub consumer does once
    subscribed, for tests that run an uplink with no hub consumer (the uplink waits for it).

    Call it before any hub consumer connects: the hub user's client id is its username, so this
    login would end a connected consumer's session."""

    async def publish() -> None:
        tls = hub_tls_params(broker) if broker.ca_file is not None else None
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.hub_username,
            password=broker.hub_password,
            tls_params=tls,
        ) as client:
            await publish_hub_session(client, "regional")

    with ThreadPoolExecutor(1) as thread:  # its own loop, whatever this thread runs
        thread.submit(asyncio.run, publish()).result()
