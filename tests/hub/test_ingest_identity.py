"""What a gateway may claim: the registry decides; forged claims are rejected and counted, and the
good data beside them is kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import EventState, SiteIdentity
from cloud_hub.db.models import Alert, Device, Gateway, LatestValue, TelemetryWindow
from cloud_hub.ingest.checks import IngestLimits
from cloud_hub.ingest.worker import INGEST_ERRORS, IngestWorker, OutcomeStatus
from device_profiles.schema import Profile
from tests.hub.builders import SITE, T0, device_health, event, heartbeat, stats, telemetry

OTHER_SCHOOL = SITE.model_copy(update={"school_id": "s-2", "school_name": "No. 2 School"})
OTHER_DISTRICT = SITE.model_copy(update={"district_id": "d-south"})


def rejected(error_type: str) -> float:
    return INGEST_ERRORS.labels(error_type=error_type, stage="processing")._value.get()


def count(sessions: sessionmaker[Session], model: type, *where: object) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_a_heartbeat_cannot_move_its_gateway_to_another_school(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)
    before = rejected("school_mismatch")

    forged = worker.process(*heartbeat(seq=2, site=OTHER_SCHOOL), now=T0)

    assert (forged.status, forged.reason) == (OutcomeStatus.REJECTED, "school_mismatch")
    assert rejected("school_mismatch") == before + 1
    with sessions() as session:
        gateway = session.get(Gateway, "gw-1")
        assert gateway is not None and gateway.school_id == "s-1"


def test_a_new_gateway_cannot_join_a_school_served_by_another_gateway(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat("gw-1", seq=1, devices=[device_health("co2-1")]), now=T0)

    intruder = worker.process(
        *heartbeat("gw-evil", seq=1, devices=[device_health(f"x-{i}") for i in range(9)]), now=T0
    )

    assert (intruder.status, intruder.reason) == (OutcomeStatus.REJECTED, "school_claimed")
    assert count(sessions, Device, Device.gateway_id == "gw-evil") == 0


def test_a_school_may_have_several_gateways_when_configured(
    sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    worker = IngestWorker(sessions, profiles=profiles, limits=IngestLimits(gateways_per_school=2))
    worker.process(*heartbeat("gw-1", seq=1), now=T0)

    second = worker.process(*heartbeat("gw-2", seq=1), now=T0)

    assert second.status is OutcomeStatus.ACCEPTED


def test_a_heartbeat_cannot_move_a_known_school_to_another_district(
    worker: IngestWorker,
) -> None:
    worker.process(*heartbeat("gw-1", seq=1), now=T0)

    moved = worker.process(*heartbeat("gw-1", seq=2, site=OTHER_DISTRICT), now=T0)

    assert (moved.status, moved.reason) == (OutcomeStatus.REJECTED, "district_mismatch")


def test_devices_past_the_per_gateway_limit_are_rejected_and_the_known_ones_keep_reporting(
    sessions: sessionmaker[Session], profiles: dict[str, Profile]
) -> None:
    worker = IngestWorker(
        sessions, profiles=profiles, limits=IngestLimits(max_devices_per_gateway=2)
    )
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)

    flood = worker.process(
        *heartbeat(seq=2, devices=[device_health(f"co2-{i}") for i in range(1, 4)]), now=T0
    )
    second = worker.process(*telemetry(seq=3, device="co2-2", points={"co2": stats(500)}))
    third = worker.process(*telemetry(seq=4, device="co2-3", points={"co2": stats(500)}))
    known = worker.process(*telemetry(seq=5, device="co2-1", points={"co2": stats(500)}))

    assert (flood.status, flood.reason) == (OutcomeStatus.REJECTED, "device_limit")
    assert second.status is OutcomeStatus.ACCEPTED
    assert (third.status, third.reason) == (OutcomeStatus.REJECTED, "device_limit")
    assert known.status is OutcomeStatus.ACCEPTED
    assert count(sessions, Device) == 2


def test_times_further_ahead_than_the_tolerance_are_rejected_and_do_not_freeze_latest_values(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    now = T0 + timedelta(seconds=10)
    in_2099 = T0.replace(year=2099)
    good = worker.process(*telemetry(seq=1, points={"co2": stats(600)}), now=now)
    future_window = worker.process(
        *telemetry(seq=2, start=in_2099, points={"co2": stats(9999)}), now=now
    )
    future_event = worker.process(*event(seq=3, state=EventState.RAISED, at=in_2099), now=now)
    later = worker.process(
        *telemetry(seq=4, start=T0 + timedelta(seconds=10), points={"co2": stats(700)}),
        now=now + timedelta(seconds=10),
    )

    assert good.status is OutcomeStatus.ACCEPTED and later.status is OutcomeStatus.ACCEPTED
    assert (future_window.reason, future_event.reason) == ("from_the_future", "from_the_future")
    assert count(sessions, TelemetryWindow) == 2
    assert count(sessions, Alert) == 0
    with sessions() as session:
        assert session.scalars(select(LatestValue.value)).all() == [700]


def test_the_same_batch_delivered_twice_is_stored_once_and_every_repeat_is_a_duplicate(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = [
        heartbeat(seq=0, devices=[device_health("co2-1")]),
        *(
            telemetry(seq=seq, start=T0 + timedelta(seconds=10 * seq), points={"co2": stats(600)})
            for seq in range(1, 6)
        ),
        event(seq=6, state=EventState.RAISED),
    ]

    first = worker.process_batch(batch, now=T0 + timedelta(minutes=1))
    second = worker.process_batch(batch, now=T0 + timedelta(minutes=1))

    assert [o.status for o in first] == [OutcomeStatus.ACCEPTED] * 7
    assert [o.status for o in second] == [OutcomeStatus.DUPLICATE] * 7
    assert count(sessions, TelemetryWindow) == 5
    assert count(sessions, Alert) == 1


def test_site_identity_of_a_new_gateway_in_a_new_school_is_accepted(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    site = SiteIdentity(city_id="c", district_id="d-1", school_id="s-9")

    assert worker.process(*heartbeat("gw-9", seq=1, site=site), now=T0).status is (
        OutcomeStatus.ACCEPTED
    )
