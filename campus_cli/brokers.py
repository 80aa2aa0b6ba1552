"""The demo's broker: Mosquitto with a TLS hub listener, per-gateway passwords and ACL when it is
installed, else amqtt in-process (plain and open, for machines without Mosquitto; the demo says
so)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from pathlib import Path
from typing import Protocol

from cloud_hub.broker import HUB_USERNAME, MosquittoBroker, free_port
from cloud_hub.settings import ProvisioningSettings


class DemoBroker(Protocol):
    host: str
    port: int
    site_port: int | None
    hub_username: str
    hub_password: str
    ca_file: Path | None  # the CA hub-listener clients trust; None: the hub listener is plain
    #: where the hub grants gateways access when it approves them; None: passwords come from
    #: ``password_for``
    provisioning: ProvisioningSettings | None

    def password_for(self, gateway: str) -> str: ...
    def describe(self) -> str: ...
    async def stop(self) -> None: ...
    async def start(self) -> None: ...


class MosquittoDemoBroker:
    """A Mosquitto process on free ports with TLS and the production ACL on the hub listener.
    No gateway has an account until the hub approves it (``provisioning``)."""

    def __init__(self, workdir: Path) -> None:
        self._broker = MosquittoBroker(workdir=workdir)
        self._broker.start()
        self.provisioning: ProvisioningSettings | None = ProvisioningSettings(
            password_file=self._broker.password_file,
            pid_file=self._broker.pid_file,
            ca_dir=workdir / "tls",
        )
        self.host = self._broker.host
        self.port = self._broker.port
        self.site_port = self._broker.site_port
        self.hub_username = self._broker.hub_username
        self.hub_password = self._broker.hub_password
        self.ca_file = self._broker.ca_file

    def password_for(self, gateway: str) -> str:
        raise KeyError(f"{gateway}: gateways get their password when the hub approves them")

    def describe(self) -> str:
        return (
            f"Mosquitto, hub listener {self.host}:{self.port} (TLS, CA {self.ca_file}; password "
            f"per approved gateway + ACL), plain site listener {self.host}:{self.site_port}; "
            f"config {self._broker.config_path}"
        )

    async def stop(self) -> None:
        await asyncio.to_thread(self._broker.stop)

    async def start(self) -> None:
        """Start again after ``stop()``, on the same ports with the same passwords."""
        await asyncio.to_thread(self._broker.start)


class AmqttDemoBroker:
    """amqtt in this process: no Mosquitto needed, but also no TLS and no per-gateway ACL."""

    def __init__(self, gateways: list[str]) -> None:
        from amqtt.broker import Broker

        self.host = "127.0.0.1"
        self.port = free_port()
        self.site_port: int | None = free_port()
        self.hub_username = HUB_USERNAME
        self.hub_password = secrets.token_urlsafe(18)
        self.ca_file: Path | None = None
        self.provisioning: ProvisioningSettings | None = None
        self._passwords = {gateway: secrets.token_urlsafe(18) for gateway in gateways}
        self._broker = Broker(
            {
                "listeners": {
                    "default": {"type": "tcp", "bind": f"{self.host}:{self.port}"},
                    "site": {"type": "tcp", "bind": f"{self.host}:{self.site_port}"},
                },
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )

    async def start(self) -> None:
        await self._broker.start()

    def password_for(self, gateway: str) -> str:
        return self._passwords[gateway]

    def describe(self) -> str:
        return (
            f"amqtt in-process on {self.host}:{self.port} and {self.host}:{self.site_port}, "
            "plain MQTT — Mosquitto was not found, so there is NO TLS and NO per-gateway ACL; "
            "install the Debian package 'mosquitto' for the secured set-up"
        )

    async def stop(self) -> None:
        await self._broker.shutdown()


async def start_demo_broker(workdir: Path, gateways: list[str]) -> DemoBroker:
    if shutil.which("mosquitto") and shutil.which("mosquitto_passwd"):
        return await asyncio.to_thread(MosquittoDemoBroker, workdir)
    broker = AmqttDemoBroker(gateways)
    await broker.start()
    return broker
