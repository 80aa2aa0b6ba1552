"""Health alarms without storms: an offline gateway raises one alert that lists its devices and
holds theirs; a device offline past its profile's allowance raises its own; a hub that cannot hear
its broker checks nothing, says so on /healthz and does not call schools offline."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import DeviceStatus
from cloud_hub.alerts.health import HealthMonitor, HealthRunner
from cloud_hub.api.main import create_app
from cloud_hub.db.models import Alert, Gateway, StatusChange
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import HubSettings
from cloud_hub.status import GatewayStatus, Hearing, gateway_status
from device_profiles.rules import ConditionKind
from device_profiles.schema import Profile
from tests.hub.builders import T0, device_health, heartbeat

GAS = "honeywell_midas_gas"  # a safety profile: offline alert at level III after 300 s
OFFLINE_AFTER_S = 30.0


def without_edge_offline_rules(profiles: dict[str, Profile]) -> dict[str, Profile]:
    """The profiles as a site whose safety profiles leave offline alarms to the hub (the bundled
    ones raise them at the edge, ``safety_device_offline``)."""
    return {
        name: profile.model_copy(
            update={"alerts": [r for r in profile.alerts if r.kind is not ConditionKind.OFFLINE]}
        )
        for name, profile in profiles.items()
    }


def monitor(sessions: sessionmaker[Session], profiles: dict[str, Profile]) -> HealthMonitor:
    return HealthMonitor(
        sessions, profiles=without_edge_offline_rules(profiles), offline_after_s=OFFLINE_AFTER_S
    )


def alerts_by_rule(sessions: sessionmaker[Session]) -> dict[tuple[str, str], Alert]:
    with sessions() as session:
        return {(a.device, a.rule): a for a in session.scalars(select(Alert))}


def beat(worker: IngestWorker, seq: int, at: datetime, gas: DeviceStatus) -> None:
    devices = [device_health("gas-1", profile=GAS, status=gas), device_health("co2-1")]
    worker.process(*heartbeat(seq=seq, devices=devices, sent_at=at), now=at)


def test_a_stopped_gas_detector_raises_a_level_iii_alert_after_its_allowance_and_clears(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    health = monitor(sessions, profiles)
    beat(worker, 1, T0, DeviceStatus.ONLINE)
    for n, at in enumerate(T0 + timedelta(seconds=s) for s in range(10, 320, 10)):
        beat(worker, 2 + n, at, DeviceStatus.OFFLINE)  # stopped at T0 + 10 s
        health.check(now=at, hearing=Hearing())
    assert alerts_by_rule(sessions) == {}  # 300 s allowance not passed yet

    beat(worker, 40, T0 + timedelta(seconds=320), DeviceStatus.OFFLINE)
    health.check(now=T0 + timedelta(seconds=320), hearing=Hearing())

    alert = alerts_by_rule(sessions)[("gas-1", "device_offline")]
    assert (alert.state, alert.severity, alert.source, alert.school_id) == (
        "open",
        "III",
        "health",
        "s-1",
    )
    assert "gas-1" in alert.message and "offline since 2026-03-02 08:00:10Z" in alert.message

    beat(worker, 41, T0 + timedelta(seconds=330), DeviceStatus.ONLINE)
    health.check(now=T0 + timedelta(seconds=330), hearing=Hearing())
    assert alerts_by_rule(sessions)[("gas-1", "device_offline")].state == "resolved"


def test_a_device_whose_profile_raises_offline_at_the_edge_gets_no_second_alert_from_the_hub(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    health = HealthMonitor(sessions, profiles=profiles, offline_after_s=OFFLINE_AFTER_S)
    beat(worker, 1, T0, DeviceStatus.OFFLINE)
    beat(worker, 2, T0 + timedelta(seconds=600), DeviceStatus.OFFLINE)

    health.check(now=T0 + timedelta(seconds=600), hearing=Hearing())

    assert alerts_by_rule(sessions) == {}  # the gateway's safety_device_offline event stands


def test_a_hub_setting_shortens_every_profile_s_offline_allowance_for_a_drill(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    health = HealthMonitor(
        sessions,
        profiles=without_edge_offline_rules(profiles),
        offline_after_s=OFFLINE_AFTER_S,
        device_offline_alarm_s=20,
    )
    beat(worker, 1, T0, DeviceStatus.OFFLINE)
    health.check(now=T0 + timedelta(seconds=20), hearing=Hearing())
    assert alerts_by_rule(sessions) == {}  # not past 20 s yet

    beat(worker, 2, T0 + timedelta(seconds=21), DeviceStatus.OFFLINE)
    health.check(now=T0 + timedelta(seconds=21), hearing=Hearing())

    alert = alerts_by_rule(sessions)[("gas-1", "device_offline")]
    assert (alert.state, alert.severity, alert.threshold) == ("open", "III", 20.0)


def test_a_silent_gateway_raises_one_alert_listing_its_devices_and_holds_theirs(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    health = monitor(sessions, profiles)
    beat(worker, 1, T0, DeviceStatus.OFFLINE)  # gas-1 offline, then the whole gateway goes quiet
    for seconds in (20, 31, 600, 900):
        health.check(now=T0 + timedelta(seconds=seconds), hearing=Hearing())

    raised = alerts_by_rule(sessions)
    assert list(raised) == [("", "gateway_offline")]  # the device's own alert is held
    gateway = raised[("", "gateway_offline")]
    assert (gateway.state, gateway.severity, gateway.opened_at) == (
        "open",
        "III",
        T0 + timedelta(seconds=31),
    )
    assert "2 devices: co2-1, gas-1" in gateway.message
    assert gateway.occurrences == 1  # checked again and again: still one occurrence

    back = T0 + timedelta(seconds=901)
    beat(worker, 2, back, DeviceStatus.ONLINE)
    health.check(now=back, hearing=Hearing())

    assert alerts_by_rule(sessions)[("", "gateway_offline")].state == "resolved"
    with sessions() as session:
        changes = [
            (c.device, c.status)
            for c in session.scalars(select(StatusChange).order_by(StatusChange.id))
        ]
    assert changes[-3:] == [("", "offline"), ("gas-1", "online"), ("", "online")]


def test_a_hub_that_cannot_hear_its_broker_checks_nothing_and_judges_heartbeats_fairly(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    beat(worker, 1, T0, DeviceStatus.ONLINE)
    clock = [T0 + timedelta(seconds=5)]
    connected = [True]
    runner = HealthRunner(
        monitor(sessions, profiles),
        connected=lambda: connected[0],
        interval_s=1,
        clock=lambda: clock[0],
    )
    runner.tick()
    connected[0] = False  # the hub loses its broker for ten minutes
    for seconds in (10, 300, 600):
        clock[0] = T0 + timedelta(seconds=seconds)
        runner.tick()
    with sessions() as session:
        gateway = session.get(Gateway, "gw-1")
    assert gateway is not None
    assert alerts_by_rule(sessions) == {}
    status = gateway_status(
        gateway, now=clock[0], offline_after_s=OFFLINE_AFTER_S, hearing=runner.hearing
    )
    assert status is GatewayStatus.ONLINE  # as last heard: the outage is the hub's own

    connected[0] = True  # back: the gateway gets a full heartbeat timeout to be heard again
    clock[0] = T0 + timedelta(seconds=620)
    runner.tick()
    assert alerts_by_rule(sessions) == {}
    clock[0] = T0 + timedelta(seconds=651)  # 31 s after the hub hears again
    runner.tick()
    assert list(alerts_by_rule(sessions)) == [("", "gateway_offline")]  # really gone


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_registered_gateway_never_heard_raises_its_alert_only_after_the_allowance_from_start(
    worker: IngestWorker, sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    health = monitor(sessions, profiles)
    beat(worker, 1, T0, DeviceStatus.ONLINE)
    with sessions.begin() as session:  # registered and bound to its school, never heard
        session.scalars(select(Gateway)).one().last_seen_at = None
    started = Hearing(since=T0)

    health.check(now=T0 + timedelta(seconds=OFFLINE_AFTER_S), hearing=started)
    assert alerts_by_rule(sessions) == {}  # the hub just started: it may connect any moment

    health.check(now=T0 + timedelta(seconds=OFFLINE_AFTER_S + 1), hearing=started)
    assert alerts_by_rule(sessions)[("", "gateway_offline")].state == "open"


def test_healthz_is_503_while_ingest_cannot_reach_the_hub_broker(database_url: str) -> None:
    settings = HubSettings(
        database_url=database_url, development=True, broker={"port": free_port()}
    )
    with TestClient(create_app(settings, run_ingest=True)) as client:
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "role": "regional",
        "ingest": "disconnected",
        "database": "ok",
        "federation": "off",
    }


def test_healthz_is_503_when_the_database_does_not_answer(tmp_path: object) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    settings = HubSettings(database_url=dead, development=True)
    with TestClient(create_app(settings, run_ingest=False)) as client:
        response = client.get("/healthz")

    assert (response.status_code, response.json()["database"]) == (503, "unavailable")
