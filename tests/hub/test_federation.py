"""A regional hub forwards to the central hub: rollups, school health and KPI snapshots, each
numbered by the regional hub's own outbox (node, epoch, seq) and stored once at the central hub.

The regional hub is the KPI tests' simulated city (12 schools in 3 districts with known answers),
ingested by ``IngestWorker``; ``RegionalForwarder.collect`` queues what is due in a real outbox;
its rows are delivered as the uplink would (``encode_stored``) to a ``FederationWorker`` on a
central database. The MQTT legs are in tests/e2e/test_tiers.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campus_config import HubBrokerSettings
from campus_protocol import (
    AlertChanges,
    MessageKind,
    Severity,
    codec,
    uplink_topic,
)
from cloud_hub.alerts.lifecycle import Transition
from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.cli import app
from cloud_hub.db import alerts
from cloud_hub.db.alerts import Alarm, AlertKey
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import Alert, AlertSource
from cloud_hub.federation.forwarder import RegionalForwarder
from cloud_hub.federation.ingest import FederationWorker
from cloud_hub.federation.models import (
    AlertTransition,
    DistrictReport,
    RegionalHub,
    SchoolHealth,
    SchoolRollup,
)
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from cloud_hub.kpis.compute import Kpi, LessonTimes, Level, compute_kpis
from cloud_hub.settings import FederationSettings, HubSettings
from device_profiles.schema import Profile
from tests.auth_support import bearer, make_user
from tests.hub.builders import alert_change, message, telemetry
from tests.hub.test_kpis import NOW, City, value
from tests.hub.test_kpis import city as city

REGIONAL = "region-north"


@pytest.fixture
def central(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    create_schema(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def forwarder(
    sessions: sessionmaker[Session], profiles: dict[str, Profile], outbox: Path, *, at: datetime
) -> RegionalForwarder:
    settings = FederationSettings(node_id=REGIONAL, central=HubBrokerSettings(), outbox_path=outbox)
    return RegionalForwarder(
        settings,
        sessions,
        profiles=profiles,
        lessons=LessonTimes(),
        offline_after_s=1e9,
        clock=lambda: at,
    )


def deliver(forwarding: RegionalForwarder, central: FederationWorker) -> list[OutcomeStatus]:
    """Every queued row, enveloped as the uplink does, to the central worker; rows stay queued
    (so a test can deliver them twice, as a lost PUBACK would)."""
    outbox = forwarding.outbox
    statuses = []
    for row in outbox.pending(10_000):
        payload = codec.encode_stored(
            node=REGIONAL,
            epoch=outbox.epoch,
            seq=row.seq,
            kind=row.kind,
            body_json=row.body,
            sent_at=NOW,
        )
        topic = uplink_topic(REGIONAL, row.kind)
        statuses.append(central.process(topic, payload, now=NOW).status)
    return statuses


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_the_central_hub_stores_a_regional_hubs_reports_once_and_sums_the_city_kpis(
    city: City,
    sessions: sessionmaker[Session],
    central: sessionmaker[Session],
    profiles: dict[str, Profile],
    tmp_path: Path,
) -> None:
    forwarding = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW)
    worker = FederationWorker(central)

    queued = forwarding.collect()
    first = deliver(forwarding, worker)
    again = deliver(forwarding, worker)  # every PUBACK lost: the broker redelivers them all

    assert queued == len(first) > 0 and set(first) == {OutcomeStatus.ACCEPTED}
    assert set(again) == {OutcomeStatus.DUPLICATE}
    with central() as session:
        hub = session.get_one(RegionalHub, REGIONAL)
        assert (hub.messages, hub.repeats) == (queued, 0)
        reports = {r.district_id: r for r in session.scalars(select(DistrictReport))}
        assert sorted(reports) == ["d1", "d2", "d3"]
        assert {r.first_reported_at for r in reports.values()} == {NOW}
        query = select(SchoolHealth.school_id, SchoolHealth.status)
        statuses = {school: status for school, status in session.execute(query)}
    assert len(statuses) == 12 and statuses["s12"] == "offline"  # in the register, no gateway
    assert forwarding.outbox.appended() == {
        kind: n for kind, n in {"fleet": 1, "kpis": 1, "rollup": queued - 2}.items() if n
    }
    with sessions() as regional, central() as session:
        expected = compute_kpis(
            regional,
            level=Level.CITY,
            id="city-1",
            scope=None,
            now=NOW,
            profiles=profiles,
            lessons=LessonTimes(),
        )
        from cloud_hub.federation import city as city_views

        summed = city_views.city_kpis(session, level=Level.CITY, id="city-1", scope=None, now=NOW)
    assert expected is not None and summed is not None
    assert summed.schools == expected.schools == 12
    assert {v.kpi: v.value for v in summed.values} == pytest.approx(
        {v.kpi: v.value for v in expected.values}
    )


def test_rollups_are_per_school_and_period_and_late_windows_replace_them_whole(
    worker: IngestWorker,
    sessions: sessionmaker[Session],
    central: sessionmaker[Session],
    profiles: dict[str, Profile],
    tmp_path: Path,
) -> None:
    from tests.hub.builders import T0, device_health, heartbeat

    worker.process(*heartbeat(seq=0, devices=[device_health("co2-1")]))
    for minute in range(12):  # windows in 5-minute periods 08:00, 08:05 and 08:10
        start = T0 + timedelta(minutes=minute)
        worker.process(*telemetry(seq=1 + minute, start=start, points={"co2": value(400 + minute)}))
    at = T0 + timedelta(minutes=61)  # the 08:00 hour has closed
    forwarding = forwarder(sessions, profiles, tmp_path / "outbox.db", at=at)
    central_worker = FederationWorker(central)

    forwarding.collect()
    deliver(forwarding, central_worker)
    forwarding.outbox.ack_many(row.seq for row in forwarding.outbox.pending(10_000))
    nothing_new = forwarding.collect()
    worker.process(
        *telemetry(seq=50, start=T0 + timedelta(minutes=4, seconds=30), points={"co2": value(900)})
    )
    late = forwarding.collect()
    deliver(forwarding, central_worker)

    assert (nothing_new, late) == (0, 2)  # 08:00-08:05 and the 08:00 hour, each re-sent whole
    with central() as session:
        rows = session.execute(
            select(
                SchoolRollup.period,
                SchoolRollup.period_start,
                SchoolRollup.windows,
                SchoolRollup.max,
            ).order_by(SchoolRollup.period, SchoolRollup.period_start)
        ).all()
    assert [(p, s.minute, w, m) for p, s, w, m in rows if p == "5m"] == [
        ("5m", 0, 6, 900.0),
        ("5m", 5, 5, 409.0),
        ("5m", 10, 2, 411.0),
    ]
    assert [(p, w) for p, _, w, _ in rows if p == "1h"] == [("1h", 13)]


def test_a_restarted_regional_hub_resumes_from_its_marks_and_repeats_nothing(
    city: City, sessions: sessionmaker[Session], profiles: dict[str, Profile], tmp_path: Path
) -> None:
    first = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW)
    queued = first.collect()
    epoch = first.outbox.epoch
    first.outbox.close()

    restarted = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW + timedelta(seconds=5))

    assert restarted.collect() == 0  # same fleet and KPI slots, no rollup changed
    assert (restarted.outbox.epoch, restarted.outbox.depth()) == (epoch, queued)


def test_the_central_hub_rejects_a_gateways_message_and_counts_repeated_alert_transitions(
    central: sessionmaker[Session],
) -> None:
    worker = FederationWorker(central)
    change = alert_change(7, at=NOW)

    gateway = worker.process(*telemetry(seq=1, points={"co2": value(500)}), now=NOW)
    first = worker.process(*message(REGIONAL, 1, AlertChanges(changes=[change])), now=NOW)
    resent = worker.process(*message(REGIONAL, 2, AlertChanges(changes=[change])), now=NOW)

    assert (gateway.status, gateway.reason) == (OutcomeStatus.REJECTED, "unexpected_kind")
    assert (first.status, resent.status) == (OutcomeStatus.ACCEPTED, OutcomeStatus.ACCEPTED)
    with central() as session:
        assert session.get_one(RegionalHub, REGIONAL).repeats == 1  # a new seq, the same change
    assert MessageKind.ALERTCHANGE.value == "alertchange"


def test_alert_transitions_at_a_regional_hub_reach_the_central_hub_once_each_in_order(
    city: City,
    sessions: sessionmaker[Session],
    central: sessionmaker[Session],
    profiles: dict[str, Profile],
    tmp_path: Path,
) -> None:
    key = AlertKey(gateway_id="gw-s01", device="lab1-gas", rule="gas_high")
    alarm = Alarm(
        key=key,
        source=AlertSource.EDGE,
        point="concentration",
        severity=Severity.II,
        at=NOW,
        value=30.0,
        threshold=25.0,
        message="可燃气体浓度超限",
    )
    gateway_offline = replace(
        alarm, key=AlertKey(gateway_id="gw-s02", device="", rule="gateway_offline")
    )
    with sessions.begin() as session:
        opened = alerts.raise_alert(session, alarm=alarm, actor="gateway:gw-s01")
        again = replace(alarm, at=NOW + timedelta(seconds=10))
        alerts.raise_alert(session, alarm=again, actor="gateway:gw-s01")  # an occurrence only
        own = alerts.raise_alert(session, alarm=gateway_offline, actor="hub")  # no device
    forwarding = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW)
    worker = FederationWorker(central)
    forwarding.collect()
    deliver(forwarding, worker)
    with sessions.begin() as session:
        alert = session.get_one(Alert, opened.alert_id)
        for step, transition in enumerate((Transition.ACKNOWLEDGE, Transition.RESOLVE), 1):
            at = NOW + timedelta(minutes=step)
            alerts.apply(session, alert=alert, transition=transition, actor="admin", at=at)

    forwarding.collect()
    statuses = deliver(forwarding, worker)  # the first batch again (duplicates), then the new
    nothing_new = forwarding.collect()

    assert OutcomeStatus.ACCEPTED in statuses and nothing_new == 0
    with central() as session:
        rows = session.scalars(select(AlertTransition).order_by(AlertTransition.at)).all()
        hub = session.get_one(RegionalHub, REGIONAL)
    assert [(r.alert_id, r.device, r.state, r.district_id) for r in rows] == [
        (opened.alert_id, "lab1-gas", "open", "d1"),
        (own.alert_id, "gw-s02", "open", "d1"),  # a gateway's own alert names the gateway
        (opened.alert_id, "lab1-gas", "acknowledged", "d1"),
        (opened.alert_id, "lab1-gas", "resolved", "d1"),
    ]
    assert rows[0].message == "可燃气体浓度超限" and hub.repeats == 0
    assert forwarding.outbox.appended()["alertchange"] == 2


def test_a_kind_that_cannot_be_built_holds_up_only_itself_and_is_counted(
    city: City, sessions: sessionmaker[Session], profiles: dict[str, Profile], tmp_path: Path
) -> None:
    alarm = Alarm(
        key=AlertKey(gateway_id="gw-s01", device="lab1-gas", rule="gas_high"),
        source=AlertSource.EDGE,
        point="concentration",
        severity=Severity.II,
        at=NOW,
        value=30.0,
        threshold=25.0,
    )
    with sessions.begin() as session:
        alert_id = alerts.raise_alert(session, alarm=alarm, actor="gateway:gw-s01").alert_id
        session.get_one(Alert, alert_id).severity = "V"  # a row no wire message can carry
    failures = REGISTRY.get_sample_value(
        "campus_federation_build_failures_total", {"part": "alertchange"}
    )
    forwarding = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW)

    queued = forwarding.collect()

    assert queued > 0 and forwarding.outbox.mark("alerts") is None  # tried again next round
    assert set(forwarding.outbox.appended()) == {"fleet", "kpis", "rollup"}
    after = REGISTRY.get_sample_value(
        "campus_federation_build_failures_total", {"part": "alertchange"}
    )
    assert (after or 0) == (failures or 0) + 1


@pytest.fixture
def city_client(
    city: City,
    sessions: sessionmaker[Session],
    central: sessionmaker[Session],
    profiles: dict[str, Profile],
    tmp_path: Path,
) -> Iterator[TestClient]:
    forwarding = forwarder(sessions, profiles, tmp_path / "outbox.db", at=NOW)
    forwarding.collect()
    deliver(forwarding, FederationWorker(central))
    url = str(central.kw["bind"].url)
    app_ = create_app(
        HubSettings(role="central", database_url=url, development=True),
        run_ingest=False,
        profiles=profiles,
    )
    app_.dependency_overrides[get_now] = lambda: NOW
    with TestClient(app_) as client:
        yield client


def test_the_city_views_answer_by_scope(
    city_client: TestClient, central: sessionmaker[Session]
) -> None:
    city_admin = bearer(make_user(central, "city", Role.CITY_ADMIN, "city:city-1", now=NOW))
    d2 = bearer(make_user(central, "d2", Role.VIEWER, "district:d2", now=NOW))

    districts = city_client.get("/api/v1/city/districts", headers=city_admin).json()
    offline = city_client.get(
        "/api/v1/city/schools", params={"status": "offline"}, headers=city_admin
    ).json()
    kpis = city_client.get(
        "/api/v1/city/kpis", params={"level": "city", "id": "city-1"}, headers=city_admin
    )
    alerts = city_client.get("/api/v1/city/alerts", headers=city_admin)
    d2_districts = city_client.get("/api/v1/city/districts", headers=d2).json()
    d2_city = city_client.get(
        "/api/v1/city/kpis", params={"level": "city", "id": "city-1"}, headers=d2
    )
    d2_other = city_client.get(
        "/api/v1/city/kpis", params={"level": "district", "id": "d1"}, headers=d2
    )
    d2_own = city_client.get("/api/v1/city/kpis", headers=d2)
    anonymous = city_client.get("/api/v1/city/schools")

    assert [d["id"] for d in districts["data"]] == ["d1", "d2", "d3"]
    assert districts["data"][0]["regional_hub"] == REGIONAL
    assert districts["data"][0]["reporting_since"].startswith(NOW.isoformat()[:19])
    assert [s["id"] for s in offline["data"]] == ["s12"] and offline["by_status"]["offline"] == 1
    assert kpis.status_code == 200 and kpis.json()["schools"] == 12
    coverage = {k["kpi"]: k["value"] for k in kpis.json()["kpis"]}
    assert coverage["recording_classroom_coverage"] == 83.33
    assert alerts.status_code == 200 and set(alerts.json()["total"]) == {"I", "II", "III", "IV"}
    assert [d["id"] for d in d2_districts["data"]] == ["d2"]
    assert (d2_city.status_code, d2_other.status_code, d2_own.status_code) == (403, 404, 200)
    assert d2_own.json()["schools"] == 4
    assert anonymous.status_code == 401


def test_campus_hub_kpis_on_a_central_hub_prints_the_city_from_the_snapshots(
    city_client: TestClient, central: sessionmaker[Session]
) -> None:
    url = str(central.kw["bind"].url)
    result = CliRunner().invoke(
        app,
        ["kpis", "--id", "city-1", "--database-url", url, "--at", NOW.isoformat()],
        env={"CAMPUS_HUB_ROLE": "central"},
    )

    district = CliRunner().invoke(
        app,
        ["kpis", "--id", "d1", "--level", "district", "--database-url", url, "--csv"],
        env={"CAMPUS_HUB_ROLE": "central"},
    )

    assert result.exit_code == 0, result.output
    assert "central hub" in result.output and "12 schools" in result.output
    assert "83.33 %" in result.output
    kpis_listed = [line.split(",")[3] for line in district.output.splitlines()[1:]]
    assert kpis_listed == [kpi.value for kpi in Kpi], district.output  # the plans' order
