"""The demo's hub tiers: one regional hub per district, each with its own broker, forwarding to
one central hub with its own broker (as docker-compose.yml and tests/e2e/test_tiers.py run it).

``DistrictHub`` is a district's broker, database, administrator and ``campus hub serve`` process;
``CentralHub`` the same for the city, whose broker gives every regional hub an account named after
its node id (as a regional broker gives its gateways)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from campus_cli.brokers import AmqttDemoBroker, DemoBroker
from campus_cli.demo_admin import DemoAdmin
from campus_cli.processes import Supervisor
from cloud_hub.broker import HUB_USERNAME, MosquittoBroker
from cloud_hub.settings import ProvisioningSettings


def regional_node(district_id: str) -> str:
    """The node id (and central-broker username) of a district's regional hub."""
    return f"region-{district_id}"


def hub_env(broker: DemoBroker, database_url: str) -> dict[str, str]:
    """A hub process's connection to ``broker`` and its database, as environment."""
    env = {
        "CAMPUS_HUB_DATABASE_URL": database_url,
        "CAMPUS_HUB_BROKER__HOST": broker.host,
        "CAMPUS_HUB_BROKER__PORT": str(broker.port),
        "CAMPUS_HUB_BROKER__USERNAME": broker.hub_username,
        "CAMPUS_HUB_BROKER__PASSWORD": broker.hub_password,
    }
    if broker.ca_file is not None:
        env["CAMPUS_HUB_BROKER__TLS__CA_FILE"] = str(broker.ca_file)
    if broker.provisioning is not None:
        env["CAMPUS_HUB_PROVISIONING__PASSWORD_FILE"] = str(broker.provisioning.password_file)
        env["CAMPUS_HUB_PROVISIONING__PID_FILE"] = str(broker.provisioning.pid_file)
        if broker.provisioning.ca_dir is not None:
            env["CAMPUS_HUB_PROVISIONING__CA_DIR"] = str(broker.provisioning.ca_dir)
    return env


class CentralBroker:
    """The central hub's broker: Mosquitto (TLS, one password per regional hub, the gateway ACL)
    when installed, else amqtt in-process (plain)."""

    def __init__(self, workdir: Path, regions: list[str]) -> None:
        self._mosquitto: MosquittoBroker | None = None
        self._amqtt: AmqttDemoBroker | None = None
        if shutil.which("mosquitto"):
            self._mosquitto = MosquittoBroker(workdir=workdir, gateways=regions, site_port=None)
        else:
            self._amqtt = AmqttDemoBroker(regions)
        inner = self._mosquitto or self._amqtt
        assert inner is not None
        self.host, self.port = inner.host, inner.port
        self.site_port: int | None = None
        self.hub_username = getattr(inner, "hub_username", HUB_USERNAME)
        self.hub_password: str = inner.hub_password
        self.ca_file: Path | None = inner.ca_file
        self.provisioning: ProvisioningSettings | None = None

    def password_for(self, region: str) -> str:
        inner = self._mosquitto or self._amqtt
        assert inner is not None
        return inner.password_for(region)

    def describe(self) -> str:
        if self._mosquitto is not None:
            return f"Mosquitto {self.host}:{self.port} (TLS; one password per regional hub + ACL)"
        return f"amqtt in-process {self.host}:{self.port} (plain MQTT: Mosquitto not found)"

    async def start(self) -> None:
        if self._mosquitto is not None:
            await asyncio.to_thread(self._mosquitto.start)
        elif self._amqtt is not None:
            await self._amqtt.start()

    async def stop(self) -> None:
        if self._mosquitto is not None:
            await asyncio.to_thread(self._mosquitto.stop)
        elif self._amqtt is not None:
            await self._amqtt.stop()


@dataclass
class Tier:
    """One hub of the demo: its name (the supervisor's child name), API and database."""

    name: str
    port: int
    database_url: str
    admin: DemoAdmin | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, supervisor: Supervisor) -> None:
        supervisor.start(
            self.name,
            "hub",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            env=self.env,
        )


def federation_env(central: CentralBroker, district_id: str, workdir: Path) -> dict[str, str]:
    """A regional hub's forwarding to ``central``: quick slots, so the city fills in minutes."""
    node = regional_node(district_id)
    prefix = "CAMPUS_HUB_FEDERATION__"
    env = {
        "CAMPUS_HUB_ROLE": "regional",
        f"{prefix}NODE_ID": node,
        f"{prefix}CENTRAL__HOST": central.host,
        f"{prefix}CENTRAL__PORT": str(central.port),
        f"{prefix}CENTRAL__PASSWORD": central.password_for(node),
        f"{prefix}OUTBOX_PATH": str(workdir / f"{node}-outbox.db"),
        f"{prefix}EVERY_S": "5",
        f"{prefix}FLEET_EVERY_S": "10",
        f"{prefix}KPI_EVERY_S": "30",
    }
    if central.ca_file is not None:
        env[f"{prefix}CENTRAL__TLS__CA_FILE"] = str(central.ca_file)
    return env
