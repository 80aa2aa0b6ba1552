"""School status (online, degraded, offline) from gateway state, heartbeat age and devices."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import DeviceStatus
from cloud_hub.db import topology
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.status import SchoolStatus, summarize_school
from tests.hub.builders import SITE, T0, device_health, heartbeat, state

OFFLINE_AFTER_S = 30


def school_status(sessions: sessionmaker[Session], *, now: datetime) -> SchoolStatus:
    with sessions() as session:
        view = topology.get_school(session, school_id=SITE.school_id)
        assert view is not None
        summary = summarize_school(
            gateways=view.gateways, devices=view.devices, now=now, offline_after_s=OFFLINE_AFTER_S
        )
        return summary.status


def test_school_status_follows_heartbeats_devices_and_gateway_state(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    online = [device_health("co2-1"), device_health("lux-1")]
    worker.process(*state(seq=1, online=True), now=T0)
    worker.process(*heartbeat(seq=2, devices=online), now=T0)
    assert school_status(sessions, now=T0 + timedelta(seconds=5)) is SchoolStatus.ONLINE

    one_down = [device_health("co2-1"), device_health("lux-1", status=DeviceStatus.OFFLINE)]
    t1 = T0 + timedelta(seconds=10)
    worker.process(*heartbeat(seq=3, devices=one_down, sent_at=t1), now=t1)
    assert school_status(sessions, now=t1) is SchoolStatus.DEGRADED

    assert (
        school_status(sessions, now=t1 + timedelta(seconds=OFFLINE_AFTER_S))
        is SchoolStatus.DEGRADED
    )
    stale = t1 + timedelta(seconds=OFFLINE_AFTER_S + 1)
    assert school_status(sessions, now=stale) is SchoolStatus.OFFLINE

    t2 = stale + timedelta(seconds=1)
    worker.process(*heartbeat(seq=4, devices=online, sent_at=t2), now=t2)
    assert school_status(sessions, now=t2) is SchoolStatus.ONLINE

    worker.process(*state(seq=5, online=False), now=t2)  # the MQTT will: connection lost
    assert school_status(sessions, now=t2) is SchoolStatus.OFFLINE

    worker.process(*state(seq=6, online=True), now=t2)
    assert school_status(sessions, now=t2) is SchoolStatus.ONLINE


def test_a_device_of_unknown_status_makes_the_school_degraded(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    devices = [device_health("co2-1"), device_health("lux-1", status=DeviceStatus.UNKNOWN)]
    worker.process(*heartbeat(seq=1, devices=devices), now=T0)

    assert school_status(sessions, now=T0) is SchoolStatus.DEGRADED


def test_a_school_whose_gateway_never_sent_a_heartbeat_is_offline(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        topology.upsert_site(session, site=SITE)

    assert school_status(sessions, now=T0) is SchoolStatus.OFFLINE


def test_a_gateway_without_devices_is_online_while_its_heartbeat_is_fresh(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1), now=T0)

    assert school_status(sessions, now=T0 + timedelta(seconds=29)) is SchoolStatus.ONLINE
    assert school_status(sessions, now=T0 + timedelta(seconds=31)) is SchoolStatus.OFFLINE
