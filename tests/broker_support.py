"""Clients for the test broker's hub listener, which speaks TLS with the broker's dev CA."""

from __future__ import annotations

from typing import Any

import aiomqtt

from cloud_hub.broker import MosquittoBroker


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
