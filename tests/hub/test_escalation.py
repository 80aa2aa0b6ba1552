"""Escalation: an unacknowledged level I/II alert goes from the school to the district and then
the city after the configured delays, each step recorded on the alert; acknowledging stops it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState
from cloud_hub.alerts.escalation import Escalation
from cloud_hub.alerts.lifecycle import Transition
from cloud_hub.db import alerts
from cloud_hub.db.models import Alert
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.settings import EscalationSettings
from tests.hub.builders import T0, device_health, event, heartbeat, stats, telemetry

SETTINGS = EscalationSettings(district_after_s=300, city_after_s=900)


def escalate_at(escalation: Escalation, seconds: float) -> int:
    return escalation.run(now=T0 + timedelta(seconds=seconds))


def the_alert(sessions: sessionmaker[Session], rule: str) -> Alert:
    with sessions() as session:
        return session.scalars(select(Alert).where(Alert.rule == rule)).one()


def test_an_unacknowledged_level_ii_alert_escalates_to_the_district_then_the_city(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, at=T0))  # level II gas
    worker.process(*telemetry(seq=3, points={"co2": stats(1200)}))  # level IV: never escalates
    escalation = Escalation(sessions, SETTINGS)

    steps = [escalate_at(escalation, s) for s in (299, 300, 301, 899, 900, 5000)]

    assert steps == [0, 1, 0, 0, 1, 0]
    gas = the_alert(sessions, "gas_above_alarm_1")
    assert (gas.escalation_tier, gas.escalated_at, gas.state) == (
        2,
        T0 + timedelta(seconds=900),
        "open",
    )
    with sessions() as session:
        changes = alerts.changes_of(session, alert_ids=[gas.id])[gas.id]
    assert [(c.transition, c.actor, c.comment) for c in changes[1:]] == [
        ("escalate", "hub", "to the district: unacknowledged for 300 s"),
        ("escalate", "hub", "to the city: unacknowledged for 900 s"),
    ]
    assert the_alert(sessions, "co2_above_hygiene_limit").escalation_tier == 0


def test_acknowledging_stops_escalation(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health()]), now=T0)
    worker.process(*event(seq=2, state=EventState.RAISED, at=T0))
    escalation = Escalation(sessions, SETTINGS)
    assert escalate_at(escalation, 310) == 1
    with sessions() as session:
        alert = alerts.find_for_change(
            session, alert_id=the_alert(sessions, "gas_above_alarm_1").id, scope=None
        )
        assert alert is not None
        alerts.apply(
            session,
            alert=alert,
            transition=Transition.ACKNOWLEDGE,
            actor="ops",
            at=T0 + timedelta(seconds=320),
        )
        session.commit()

    assert escalate_at(escalation, 1000) == 0
    assert the_alert(sessions, "gas_above_alarm_1").escalation_tier == 1
