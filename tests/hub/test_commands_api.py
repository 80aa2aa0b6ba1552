"""Commands through the REST API: 202 with an id, then pending -> delivered -> succeeded/failed
from the gateway's answers, expired when undelivered past the time-to-live; local actions
reported by a gateway are listed the same way. (SQLite and PostgreSQL.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol.messages import CommandResult, CommandStatus
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.db import commands
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from cloud_hub.settings import HubSettings
from tests.auth_support import bearer, make_user
from tests.hub.builders import SITE, T0, device_health, heartbeat, message
from tests.hub.write_lock import while_ingest_writes

NOW = T0 + timedelta(seconds=5)


SOUTH = SITE.model_copy(update={"district_id": "d-south", "school_id": "s-2"})
USERS = {
    "admin": (Role.CITY_ADMIN, "city:city-1"),
    "north-ops": (Role.DISTRICT_OPERATOR, "district:d-north"),
    "s2-tech": (Role.SCHOOL_TECHNICIAN, "school:s-2"),
    "viewer": (Role.VIEWER, "city:city-1"),
}


@pytest.fixture
def app(database_url: str, worker: IngestWorker) -> FastAPI:
    """Two schools with the same device id: s-1 (north, gw-1) and s-2 (south, gw-2)."""
    lights = device_health("room-101-lights", profile="arlight_dali_logic_lite")
    worker.process(*heartbeat(seq=1, devices=[lights]), now=T0)
    worker.process(*heartbeat("gw-2", seq=1, devices=[lights], site=SOUTH), now=T0)
    app = create_app(HubSettings(database_url=database_url, development=True), run_ingest=False)
    app.dependency_overrides[get_now] = lambda: NOW
    return app


@pytest.fixture
def client(app: FastAPI, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    """Signed in as the city's administrator."""
    token = make_user(sessions, "admin", *USERS["admin"], now=T0)
    with TestClient(app, headers=bearer(token)) as client:
        yield client


def answer(worker: IngestWorker, seq: int, **fields: object) -> None:
    outcome = worker.process(*message("gw-1", seq, CommandResult.model_validate(fields)))
    assert outcome.status is OutcomeStatus.ACCEPTED


def test_a_command_is_accepted_then_delivered_then_succeeds_with_its_readback_and_attempts(
    client: TestClient, worker: IngestWorker
) -> None:
    response = client.post(
        "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1",
        json={"point": "group_0_set_level", "value": 120},
    )
    assert response.status_code == 202
    created = response.json()
    assert (created["status"], created["target"], created["value"]) == (
        "pending",
        "group_0_set_level",
        120,
    )
    assert created["expires_at"] == "2026-03-02T08:01:05Z"  # default time-to-live 60 s
    command_id = created["id"]

    answer(worker, 2, id=command_id, ok=True, status="accepted")
    delivered = client.get(f"/api/v1/commands/{command_id}").json()
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 0)
    answer(
        worker,
        3,
        id=command_id,
        ok=True,
        status="succeeded",
        readback=120.0,
        attempts=2,
        detail="written and read back",
    )
    final = client.get(f"/api/v1/commands/{command_id}").json()
    assert (final["status"], final["readback"], final["attempts"], final["detail"]) == (
        "succeeded",
        120.0,
        2,
        "written and read back",
    )


def test_a_refused_command_fails_with_the_gateways_reason(
    client: TestClient, worker: IngestWorker
) -> None:
    command_id = client.post(
        "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1",
        json={"point": "group_0_level", "value": 1},
    ).json()["id"]
    answer(
        worker,
        2,
        id=command_id,
        ok=False,
        status="rejected",
        detail="room-101-lights: point 'group_0_level' is read-only",
    )
    body = client.get(f"/api/v1/commands/{command_id}").json()
    assert (body["status"], body["detail"]) == (
        "failed",
        "room-101-lights: point 'group_0_level' is read-only",
    )


def test_another_gateway_cannot_answer_for_a_command(
    client: TestClient, worker: IngestWorker
) -> None:
    command_id = client.post(
        "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1", json={"action": "all_off"}
    ).json()["id"]
    worker.process(
        *message("gw-2", 2, CommandResult(id=command_id, ok=True, status=CommandStatus.SUCCEEDED))
    )
    assert client.get(f"/api/v1/commands/{command_id}").json()["status"] == "pending"


def test_an_undelivered_command_expires_after_its_ttl(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    command_id = client.post(
        "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1",
        json={"action": "emergency_scene", "ttl_s": 30},
    ).json()["id"]
    with sessions() as session, session.begin():
        assert commands.expire_overdue(session, now=NOW + timedelta(seconds=29)) == 0
        assert commands.expire_overdue(session, now=NOW + timedelta(seconds=30)) == 1
    body = client.get(f"/api/v1/commands/{command_id}").json()
    assert body["status"] == "expired"
    assert "time-to-live" in body["detail"]


def test_local_actions_reported_by_a_gateway_are_listed_as_finished_commands(
    client: TestClient, worker: IngestWorker
) -> None:
    answer(
        worker,
        2,
        id="local-abc123",
        ok=True,
        status="succeeded",
        origin="local",
        device="lab-relay",
        target="relay_1_on",
        readback=1.0,
        attempts=1,
        detail="gas_level_1: ok",
    )
    body = client.get("/api/v1/commands/local-abc123").json()
    assert (body["origin"], body["status"], body["device"], body["target"], body["attempts"]) == (
        "local",
        "succeeded",
        "lab-relay",
        "relay_1_on",
        1,
    )


BAD_REQUESTS = [
    ("/api/v1/devices/nope/commands", {"action": "all_off"}, 404),
    ("/api/v1/devices/room-101-lights/commands", {"action": "all_off"}, 409),  # on 2 gateways
    ("/api/v1/devices/room-101-lights/commands?gateway_id=gw-1", {"point": "x"}, 422),
    ("/api/v1/devices/room-101-lights/commands?gateway_id=gw-1", {"value": 3}, 422),
    (
        "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1",
        {"point": "group_0_set_level", "value": 1, "action": "all_off"},
        422,
    ),
    ("/api/v1/devices/room-101-lights/commands?gateway_id=gw-1", {"action": "Bad!"}, 422),
    ("/api/v1/devices/room-101-lights/commands?gateway_id=gw-1", {"action": "a", "x": 1}, 422),
]


def test_bad_command_requests_are_refused_before_anything_is_queued(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    for path, body, status in BAD_REQUESTS:
        assert client.post(path, json=body).status_code == status, (path, body)
    with sessions() as session:
        assert commands.due_for_sending(session, now=NOW, resend_s=5) == []


def test_an_unknown_command_id_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/commands/does-not-exist").status_code == 404


def test_only_roles_that_may_act_on_the_school_can_send(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    tokens = {
        name: make_user(sessions, name, *spec, now=T0)
        for name, spec in USERS.items()
        if name != "admin"
    }
    url = "/api/v1/devices/room-101-lights/commands"
    body = {"action": "all_off"}
    viewer = client.post(url, json=body, headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403
    # the north operator sees only gw-1's device: no ambiguity, and gw-2's is not found
    north = client.post(url, json=body, headers=bearer(tokens["north-ops"]))
    assert (north.status_code, north.json()["gateway_id"]) == (202, "gw-1")
    hidden = client.post(f"{url}?gateway_id=gw-2", json=body, headers=bearer(tokens["north-ops"]))
    unknown = client.post(
        f"{url}?gateway_id=gw-404", json=body, headers=bearer(tokens["north-ops"])
    )
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()
    # the south technician cannot read the north command either
    command_id = north.json()["id"]
    assert (
        client.get(f"/api/v1/commands/{command_id}", headers=bearer(tokens["s2-tech"])).status_code
        == 404
    )
    with sessions() as session:
        entries, _ = audit.list_entries(session, action="command.send")
    assert [(e.actor, e.target) for e in entries] == [("north-ops", "device:gw-1/room-101-lights")]


def test_a_command_sent_while_ingest_holds_the_write_lock_waits_its_turn(
    client: TestClient, engine: Engine
) -> None:
    def send() -> httpx.Response:
        return client.post(
            "/api/v1/devices/room-101-lights/commands?gateway_id=gw-1",
            json={"point": "group_0_set_level", "value": 120},
        )

    assert while_ingest_writes(engine, send).status_code == 202  # not a 500 "database is locked"
