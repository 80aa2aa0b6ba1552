"""At most one active alert per (gateway, device, rule), enforced by the database: ingest workers
that raise the same alert at the same moment end with one alert counting both occurrences."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState, Severity
from cloud_hub.db import alerts, topology
from cloud_hub.db.alerts import Alarm, AlertKey
from cloud_hub.db.base import WRITER, make_engine, make_sessionmaker
from cloud_hub.db.models import Alert, AlertSource
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from device_profiles.schema import Profile
from tests.hub.builders import T0, event, heartbeat

KEY = AlertKey("gw-1", "gas-1", "gas_above_alarm_1")


def alarm(seconds: float) -> Alarm:
    return Alarm(
        key=KEY,
        source=AlertSource.EDGE,
        point="lel",
        severity=Severity.II,
        at=T0 + timedelta(seconds=seconds),
        value=25.0,
        threshold=20.0,
    )


def test_two_ingest_workers_raising_one_alert_a_few_ms_apart_leave_one_alert(
    database_url: str, engine: Engine, profiles: dict[str, Profile]
) -> None:
    """Two workers with their own connection pools, as two hub processes would have."""
    other = make_engine(database_url)
    workers = [IngestWorker(make_sessionmaker(e), profiles=profiles) for e in (engine, other)]
    workers[0].process(*heartbeat(seq=1), now=T0)
    rounds = 5
    try:
        for n in range(rounds):
            start = threading.Barrier(2)
            outcomes: list[OutcomeStatus] = []

            def raise_it(
                index: int,
                n: int = n,
                start: threading.Barrier = start,
                outcomes: list[OutcomeStatus] = outcomes,
            ) -> None:
                message = event(seq=10 + 2 * n + index, state=EventState.RAISED, rule=f"r{n}")
                start.wait()
                time.sleep(0.003 * index)  # the second worker a few ms after the first
                outcomes.append(workers[index].process(*message).status)

            threads = [threading.Thread(target=raise_it, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert outcomes == [OutcomeStatus.ACCEPTED] * 2
    finally:
        other.dispose()

    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(Alert).order_by(Alert.rule)).all()
    assert [(a.rule, a.state, a.occurrences) for a in rows] == [
        (f"r{n}", "open", 2) for n in range(rounds)
    ]


def test_a_raise_waits_for_a_concurrent_uncommitted_raise_and_counts_itself_in(
    database_url: str, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """The deterministic overlap: the first transaction has inserted and not committed when the
    second raises; the second must end as an occurrence of the first, not a second alert."""
    with sessions.begin() as session:
        topology.ensure_gateway(session, node="gw-1")
    other = make_engine(database_url)
    second_done = threading.Event()
    try:
        first = sessions()
        first.connection(execution_options=WRITER)
        with first.begin_nested():
            alerts.raise_alert(first, alarm=alarm(0), actor="gateway:gw-1")

        def second() -> None:
            with make_sessionmaker(other).begin() as session:
                session.connection(execution_options=WRITER)
                alerts.raise_alert(session, alarm=alarm(1), actor="gateway:gw-1")
            second_done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not second_done.wait(0.3), "the second raise must wait for the first transaction"
        first.commit()
        first.close()
        thread.join(10)
        assert second_done.is_set()
    finally:
        other.dispose()

    with sessions() as session:
        (row,) = session.scalars(select(Alert)).all()
    assert (row.state, row.occurrences, row.last_seen_at) == ("open", 2, T0 + timedelta(seconds=1))


def test_the_database_refuses_a_second_active_alert_written_behind_the_upsert(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        topology.ensure_gateway(session, node="gw-1")
        alerts.raise_alert(session, alarm=alarm(0), actor="gateway:gw-1")
    duplicate = Alert(
        gateway_id="gw-1",
        device=KEY.device,
        rule=KEY.rule,
        point="lel",
        severity="II",
        source="edge",
        opened_at=T0,
        last_seen_at=T0,
        value=1.0,
        threshold=1.0,
    )
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(duplicate)
