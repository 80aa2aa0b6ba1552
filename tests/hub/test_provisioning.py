"""Gateway provisioning tied to approval, against a real Mosquitto: approving makes the gateway's
credentials and broker access, revoking cuts its live connection at once, and only staff whose
scope holds the school may do either."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import uplink_topic
from campus_protocol.messages import MessageKind
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.broker import MosquittoBroker
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from cloud_hub.provisioning import approved_school
from cloud_hub.settings import HubSettings, ProvisioningSettings
from tests.auth_support import bearer, make_user
from tests.broker_support import hub_port_client, hub_tls_params
from tests.hub.builders import SITE, T0, heartbeat
from tests.hub.write_lock import while_ingest_writes

SOUTH = SITE.model_copy(update={"district_id": "d-south", "school_id": "s-2"})
NEW_SCHOOL = {"school_id": "s-new", "district_id": "d-north", "school_name": "New School"}


@pytest.fixture
def hub(
    database_url: str,
    engine: Engine,
    sessions: sessionmaker[Session],
    worker: IngestWorker,
    mosquitto_broker: MosquittoBroker,
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """The API provisioning into the test broker's password file, with four users' headers."""
    worker.process(*heartbeat("gw-1", seq=1), now=T0)
    worker.process(*heartbeat("gw-2", seq=1, site=SOUTH), now=T0)
    settings = HubSettings(
        database_url=database_url,
        development=True,
        provisioning=ProvisioningSettings(
            password_file=mosquitto_broker.password_file,
            pid_file=mosquitto_broker.pid_file,
            ca_dir=mosquitto_broker.workdir / "tls",
        ),
    )
    users = {
        "admin": (Role.CITY_ADMIN, "city:city-1"),
        "north-ops": (Role.DISTRICT_OPERATOR, "district:d-north"),
        "south-ops": (Role.DISTRICT_OPERATOR, "district:d-south"),
        "s1-tech": (Role.SCHOOL_TECHNICIAN, "school:s-1"),
        "viewer": (Role.VIEWER, "city:city-1"),
    }
    headers = {
        name: bearer(make_user(sessions, name, *spec, now=T0)) for name, spec in users.items()
    }
    app = create_app(settings, run_ingest=False)
    app.dependency_overrides[get_now] = lambda: T0
    with TestClient(app) as client:
        yield client, headers


def gateway_client(broker: MosquittoBroker, gateway: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=gateway,
        password=password,
        identifier=gateway,
        tls_params=hub_tls_params(broker),
        timeout=5,
    )


async def test_approval_grants_broker_access_and_revoking_cuts_the_live_connection(
    hub: tuple[TestClient, dict[str, Any]], mosquitto_broker: MosquittoBroker
) -> None:
    client, users = hub
    approved = client.post(
        "/api/v1/gateways/gw-new/approve", json=NEW_SCHOOL, headers=users["north-ops"]
    )
    assert approved.status_code == 200, approved.text
    password = approved.json()["password"]

    async with hub_port_client(mosquitto_broker, "hub") as hub_side:
        await hub_side.subscribe("campus/v1/+/up/#", qos=1)
        async with gateway_client(mosquitto_broker, "gw-new", password) as gateway:
            await gateway.publish(uplink_topic("gw-new", MessageKind.STATE), b"{}", qos=1)
            received = await asyncio.wait_for(anext(hub_side.messages), 5)
            assert str(received.topic) == "campus/v1/gw-new/up/state"

            revoked = client.post("/api/v1/gateways/gw-new/revoke", headers=users["north-ops"])
            assert revoked.status_code == 200, revoked.text
            assert revoked.json()["state"] == "revoked"
            with pytest.raises(aiomqtt.MqttError):  # the broker closed the connection
                await asyncio.wait_for(anext(gateway.messages), 2)
        # the hub and the gateways provisioned by hand keep their access
        await hub_side.publish("campus/v1/gw-1/down/cmd", b"{}", qos=1)
    async with hub_port_client(mosquitto_broker, "gw-1"):
        pass
    with pytest.raises(aiomqtt.MqttCodeError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user"):
        async with gateway_client(mosquitto_broker, "gw-new", password):
            pass


def test_approving_and_revoking_while_ingest_holds_the_write_lock_wait_their_turn(
    hub: tuple[TestClient, dict[str, Any]], engine: Engine
) -> None:
    client, users = hub

    def approve() -> httpx.Response:
        return client.post(
            "/api/v1/gateways/gw-new/approve", json=NEW_SCHOOL, headers=users["north-ops"]
        )

    def revoke() -> httpx.Response:
        return client.post("/api/v1/gateways/gw-new/revoke", headers=users["north-ops"])

    assert while_ingest_writes(engine, approve).status_code == 200  # not a 500 "database is locked"
    assert while_ingest_writes(engine, revoke).status_code == 200
    listed = client.get("/api/v1/gateways", headers=users["north-ops"]).json()["data"]
    assert [(g["gateway_id"], g["state"]) for g in listed] == [("gw-new", "revoked")]


def test_approving_again_rotates_the_password_and_the_registry_knows_the_school(
    hub: tuple[TestClient, dict[str, Any]], mosquitto_broker: MosquittoBroker,
    sessions: sessionmaker[Session],
) -> None:  # fmt: skip
    client, users = hub
    url = "/api/v1/gateways/gw-new/approve"
    first = client.post(url, json=NEW_SCHOOL, headers=users["admin"]).json()["password"]
    second = client.post(url, json=NEW_SCHOOL, headers=users["admin"]).json()["password"]

    assert first != second
    lines = mosquitto_broker.password_file.read_text().splitlines()
    assert [line.split(":")[0] for line in lines].count("gw-new") == 1
    with sessions() as session:
        assert approved_school(session, gateway_id="gw-new") == "s-new"
        assert approved_school(session, gateway_id="gw-1") is None  # provisioned by hand
    listed = client.get("/api/v1/gateways", headers=users["s1-tech"]).json()
    assert listed == {"data": [], "count": 0}  # s-new is not the technician's school
    north = client.get("/api/v1/gateways", headers=users["north-ops"]).json()["data"]
    assert [(g["gateway_id"], g["school_id"], g["state"]) for g in north] == [
        ("gw-new", "s-new", "approved")
    ]


def test_an_approved_gateway_reporting_another_school_is_rejected_by_ingest(
    hub: tuple[TestClient, dict[str, Any]], worker: IngestWorker
) -> None:
    client, users = hub
    client.post("/api/v1/gateways/gw-new/approve", json=NEW_SCHOOL, headers=users["admin"])

    elsewhere = worker.process(*heartbeat("gw-new", seq=1, site=SOUTH), now=T0)
    at_home = SITE.model_copy(update={"school_id": "s-new"})
    home = worker.process(*heartbeat("gw-new", seq=2, site=at_home), now=T0)

    assert (elsewhere.status, elsewhere.reason) == (OutcomeStatus.REJECTED, "school_mismatch")
    assert home.status is OutcomeStatus.ACCEPTED


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("south-ops", {"school_id": "s-1"}, 404),  # another district's school
        ("south-ops", NEW_SCHOOL, 404),  # a new school in another district
        ("north-ops", {**NEW_SCHOOL, "district_id": "d-new"}, 404),  # only admins make districts
        ("north-ops", {"school_id": "s-unknown"}, 404),
        ("s1-tech", {"school_id": "s-1"}, 403),
        ("viewer", {"school_id": "s-1"}, 403),
    ],
)
def test_approval_outside_the_callers_scope_or_role_is_refused_and_audited(
    hub: tuple[TestClient, dict[str, Any]], user: str, body: dict[str, str], status: int
) -> None:
    client, users = hub

    response = client.post("/api/v1/gateways/gw-new/approve", json=body, headers=users[user])

    assert response.status_code == status
    entries = client.get("/api/v1/audit", headers=users["admin"]).json()["data"]
    assert (entries[0]["actor"], entries[0]["result"]) == (
        user,
        "not_found" if status == 404 else "denied",
    )


def test_another_districts_gateway_cannot_be_revoked_or_taken_over(
    hub: tuple[TestClient, dict[str, Any]],
) -> None:
    client, users = hub
    client.post("/api/v1/gateways/gw-n/approve", json={"school_id": "s-1"}, headers=users["admin"])

    revoke = client.post("/api/v1/gateways/gw-n/revoke", headers=users["south-ops"])
    takeover = client.post(
        "/api/v1/gateways/gw-n/approve", json={"school_id": "s-2"}, headers=users["south-ops"]
    )

    assert revoke.status_code == takeover.status_code == 404
    assert client.get("/api/v1/gateways", headers=users["north-ops"]).json()["data"][0][
        "state"
    ] == ("approved")


def test_the_hubs_own_broker_user_cannot_be_approved_as_a_gateway(
    hub: tuple[TestClient, dict[str, Any]], mosquitto_broker: MosquittoBroker
) -> None:
    client, users = hub
    before = mosquitto_broker.password_file.read_text()

    response = client.post(
        "/api/v1/gateways/hub/approve", json={"school_id": "s-1"}, headers=users["admin"]
    )

    assert response.status_code == 422
    assert mosquitto_broker.password_file.read_text() == before


def test_a_client_certificate_from_the_hub_ca_on_request(
    hub: tuple[TestClient, dict[str, Any]], mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    client, users = hub
    body = {"school_id": "s-1", "client_certificate": True}

    issued = client.post("/api/v1/gateways/gw-c/approve", json=body, headers=users["admin"]).json()

    (tmp_path / "client.crt").write_text(issued["client_certificate"])
    (tmp_path / "ca.crt").write_text(issued["ca_certificate"])
    verify = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(tmp_path / "ca.crt"),
         str(tmp_path / "client.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-in", str(tmp_path / "client.crt")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "CN = gw-c" in subject
    assert "PRIVATE KEY" in issued["client_key"]
