"""One simulated school through the whole chain, counted at the hub.

Real parts only: a Mosquitto process with its own config (TLS, per-gateway password + ACL), pymodbus
servers serving the school's Modbus devices, an MQTT recording-room controller on the site
listener, the edge agent, the hub ingest worker on SQLite, and the hub's REST API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import Gateway, TelemetryWindow
from cloud_hub.ingest.consumer import IngestConsumer
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import BrokerSettings, HubSettings, TlsSettings
from device_profiles.loader import load_profiles
from edge_agent.app import Agent
from simulators.fleet import CityPlan, RunningFleet, plan_city
from tests.auth_support import bearer, make_user
from tests.e2e.support import SERVED, WINDOW_S, agent_settings, serve_school
from tests.waiting import DEADLINE_S, eventually

RUN_WINDOWS = 4


@dataclass
class School:
    plan: CityPlan
    broker: MosquittoBroker
    fleet: RunningFleet

    @property
    def gateway(self) -> str:
        return self.plan.schools[0].gateway_id

    @property
    def school_id(self) -> str:
        return self.plan.schools[0].id


@pytest.fixture
def plan() -> CityPlan:
    return plan_city(1, 1, seed=7)


@pytest.fixture
def broker(tmp_path: Path, plan: CityPlan) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(
        tmp_path / "mosquitto", gateways=[plan.schools[0].gateway_id], tls=True
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def school(plan: CityPlan, broker: MosquittoBroker) -> AsyncIterator[School]:
    fleet = await serve_school(plan, site_broker_port=broker.site_port or 0)
    yield School(plan=plan, broker=broker, fleet=fleet)
    await fleet.stop()


def fewest_windows_stored(sessions: Callable[[], Any], devices: int) -> int:
    """The fewest windows the hub stored for any one of ``devices`` devices (0 while one has
    none)."""
    per_device = func.count(func.distinct(TelemetryWindow.window_start))
    query = select(TelemetryWindow.device_id, per_device).group_by(TelemetryWindow.device_id)
    with sessions() as session:
        counts = [count for _, count in session.execute(query).all()]
    return min(counts) if len(counts) == devices else 0


async def test_every_window_the_agent_sends_reaches_the_hub_once_with_the_served_values(
    school: School, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    worker = IngestWorker(sessions)
    consumer = IngestConsumer(
        worker,
        BrokerSettings(
            host=school.broker.host,
            port=school.broker.port,
            password=school.broker.hub_password,
            tls=TlsSettings(ca_file=school.broker.ca_file),
        ),
    )
    ingest = asyncio.create_task(consumer.run())
    await asyncio.wait_for(consumer.connected.wait(), DEADLINE_S)

    config = agent_settings(school.plan, school.fleet, school.broker, tmp_path / "agent")
    devices = school.fleet.agent_device_configs(school.school_id)
    agent = Agent(config, load_profiles())
    running = asyncio.create_task(agent.run())
    await eventually(
        lambda: fewest_windows_stored(sessions, len(devices)) >= RUN_WINDOWS,
        what=f"{RUN_WINDOWS} windows of every device stored at the hub",
    )
    settings = HubSettings(database_url=database_url, development=True)
    city = school.plan.site_identity(school.school_id)["city_id"]
    admin = bearer(
        make_user(sessions, "admin", Role.CITY_ADMIN, f"city:{city}", now=datetime.now(UTC))
    )
    with TestClient(create_app(settings, run_ingest=False), headers=admin) as api:
        schools_while_running = api.get("/api/v1/schools").json()
    agent.request_stop()
    await asyncio.wait_for(running, DEADLINE_S)

    published = agent.messages_published
    # the devices' windows of each closed window travel together, batched into few messages
    assert 0 < published.get("telemetry", 0) <= agent.windows_enqueued
    await eventually(lambda: worker.accepted >= sum(published.values()), what="all ingested")
    # the retained offline state goes out as the agent disconnects: wait for the hub to apply it
    await eventually(
        lambda: _gateway_online(sessions, school.gateway) is False, what="the gateway offline"
    )
    ingest.cancel()
    await asyncio.gather(ingest, return_exceptions=True)
    assert worker.rejected == 0
    assert worker.duplicates == 0

    with sessions() as session:
        rows = session.scalars(select(TelemetryWindow)).all()
    starts_by_device: dict[int, list[datetime]] = {}
    for device_pk, start in {(r.device_id, r.window_start) for r in rows}:
        starts_by_device.setdefault(device_pk, []).append(start)
    assert len(starts_by_device) == len(devices), "every device delivered windows"
    assert sum(len(s) for s in starts_by_device.values()) == agent.windows_enqueued
    for starts in starts_by_device.values():
        starts.sort()
        # consecutive windows with no gap and no duplicate: exactly one per elapsed window
        assert starts == [starts[0] + timedelta(seconds=WINDOW_S * i) for i in range(len(starts))]
        assert len(starts) >= RUN_WINDOWS - 1

    with TestClient(create_app(settings, run_ingest=False), headers=admin) as api:
        listed = api.get("/api/v1/devices", params={"school_id": school.school_id}).json()
        schools_after_stop = api.get("/api/v1/schools").json()
        alerts = api.get("/api/v1/alerts", params={"state": "active"}).json()

    assert listed["count"] == len(devices)
    by_profile = {d["profile"]: d for d in listed["data"]}
    for profile, served in SERVED.items():
        values = by_profile[profile]["values"]
        for point, value in served.items():
            assert values[point]["value"] == pytest.approx(value, rel=1e-6), (profile, point)
    served_points = {point for served in SERVED.values() for point in served}
    for row in rows:
        if row.point in served_points:
            assert row.min == row.max == pytest.approx(row.mean), row.point

    [running] = schools_while_running["data"]
    assert running["status"] == "online"
    assert running["devices"] == {"total": len(devices), "online": len(devices), "offline": 0}
    [stopped] = schools_after_stop["data"]
    assert stopped["status"] == "offline", "a clean stop publishes the gateway's offline state"
    # 30 %LEL is above the GB/T 50493-2019 level-1 set-point (25 %LEL) and below level 2 (50)
    assert [(a["rule"], a["severity"]) for a in alerts["data"]] == [("gas_level_1", "II")]


def _gateway_online(sessions: Callable[[], Any], gateway_id: str) -> bool | None:
    with sessions() as session:
        online: bool | None = session.scalar(select(Gateway.online).where(Gateway.id == gateway_id))
        return online
