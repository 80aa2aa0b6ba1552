"""Schemathesis against the hub's OpenAPI schema: whatever a signed-in city administrator (the
widest view) sends to any route, the API answers without a server error and, for the answers the
schema documents, in the documented shape. Bounded examples keep it to a few seconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from campus_protocol import EventState
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings, ProvisioningSettings
from device_profiles.loader import load_profiles
from tests.auth_support import bearer, make_user
from tests.hub.builders import T0, device_health, event, heartbeat, stats, telemetry

ADMIN: dict[str, str] = {}


@pytest.fixture(scope="module")
def hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """A hub over one school's data, provisioning into a real Mosquitto's password file."""
    workdir = tmp_path_factory.mktemp("fuzz")
    broker = MosquittoBroker(workdir=workdir / "mosquitto", gateways=["gw-1"], tls=False)
    broker.start()
    database_url = f"sqlite:///{workdir / 'hub.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    worker = IngestWorker(sessions, profiles=load_profiles())
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*telemetry(seq=2, points={"co2": stats(1200, unit="ppm")}))
    worker.process(*event(seq=3, state=EventState.RAISED))
    token = make_user(sessions, "admin", Role.CITY_ADMIN, "city:city-1", now=datetime.now(UTC))
    ADMIN.update(bearer(token))
    engine.dispose()
    settings = HubSettings(
        database_url=database_url,
        development=True,
        provisioning=ProvisioningSettings(
            password_file=broker.password_file, pid_file=broker.pid_file
        ),
    )
    app = create_app(settings, run_ingest=False)
    try:
        with TestClient(app):  # runs the lifespan: the app's state stays set for the fuzzing
            yield app
    finally:
        broker.stop()


def fuzz_every_route(app: FastAPI, *, examples: int) -> tuple[list[str], Counter[int]]:
    """Call every operation of ``app``'s schema with ``examples`` generated requests, signed in as
    the city administrator; fails on any server error. Returns the operations and the statuses."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tried = []
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/auth/logout":
            continue  # it would revoke the token every other example uses
        if operation.path == "/api/v1/stream":
            continue  # an endless event stream (tests/hub/test_stream.py reads it over HTTP)

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers=ADMIN, checks=[schemathesis.checks.not_a_server_error]
            )
            statuses[response.status_code] += 1

        call()
        tried.append(f"{operation.method.upper()} {operation.path}")
    return tried, statuses


@pytest.mark.timeout(300)  # every route, 30 examples each, on a loaded 2-core machine
def test_no_input_to_any_route_causes_a_server_error(hub_app: FastAPI) -> None:
    tried, statuses = fuzz_every_route(hub_app, examples=30)

    assert len(tried) >= 9, tried
    assert statuses[200] > 50 and statuses[401] < statuses.total() / 4, statuses  # signed in


@pytest.mark.timeout(300)
def test_no_input_to_any_route_of_a_central_hub_causes_a_server_error(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'central.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    token = make_user(
        make_sessionmaker(engine), "admin", Role.CITY_ADMIN, "city:city-1", now=datetime.now(UTC)
    )
    engine.dispose()
    central = create_app(
        HubSettings(role="central", database_url=database_url, development=True), run_ingest=False
    )
    with TestClient(central):
        saved = dict(ADMIN)
        ADMIN.update(bearer(token))
        try:
            tried, statuses = fuzz_every_route(central, examples=10)
        finally:
            ADMIN.update(saved)

    assert any(path.endswith("/api/v1/city/kpis") for path in tried), tried
    assert statuses[401] < statuses.total() / 4, statuses  # signed in


def test_the_schema_covers_every_route_of_the_api(hub_app: FastAPI) -> None:
    paths = set(hub_app.openapi()["paths"])

    assert {
        "/api/v1/auth/login", "/api/v1/schools", "/api/v1/schools/{school_id}", "/api/v1/devices",
        "/api/v1/alerts", "/api/v1/audit", "/api/v1/gateways",
        "/api/v1/gateways/{gateway_id}/approve", "/api/v1/gateways/{gateway_id}/revoke",
    } <= paths  # fmt: skip
