"""IngestWorker.process_batch: one transaction per batch, set-based statements, and when a message
fails a replay with one savepoint per message, so each message still ends accepted, duplicate,
rejected or kept on its own."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import (
    EventState,
    MessageKind,
    PointStats,
    Telemetry,
    TelemetryBatch,
    uplink_topic,
)
from cloud_hub.db import devices, telemetry
from cloud_hub.db.base import make_engine, make_sessionmaker
from cloud_hub.db.models import Alert, Device, SeenSeq, TelemetryWindow
from cloud_hub.ingest.worker import IngestWorker, OutcomeStatus
from device_profiles.schema import Profile
from tests.hub.builders import CO2, T0, device_health, event, heartbeat, message, stats
from tests.hub.builders import telemetry as tele

A = OutcomeStatus.ACCEPTED
D = OutcomeStatus.DUPLICATE
R = OutcomeStatus.REJECTED
K = OutcomeStatus.KEPT

# a counter no database column holds: PostgreSQL refuses it (integer out of range) and sqlite3
# cannot even bind it (OverflowError): the message fails in storage, not in decoding
OVERFLOW = PointStats(count=2**63, min=1, max=1, mean=1, last=1)


def at(minutes: int) -> dict[str, object]:
    return {"start": T0 + timedelta(minutes=minutes)}


def windows_per_device(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(
            select(Device.key, func.count(TelemetryWindow.id))
            .join(TelemetryWindow, TelemetryWindow.device_id == Device.id)
            .group_by(Device.key)
        )
        return {key: windows for key, windows in rows}


def test_a_batch_gives_each_message_its_own_outcome_and_stores_only_the_good_ones(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    earlier = tele(seq=1, points={"co2": stats(500)}, **at(0))
    worker.process(*earlier)
    batch = [
        earlier,  # stored by an earlier batch
        tele(seq=2, points={"co2": stats(510)}, **at(1)),
        (uplink_topic("gw-1", MessageKind.TELEMETRY), b"{not json"),
        tele(seq=3, profile="cold_room_v9", points={"t": stats(4)}, **at(2)),
        tele(seq=4, points={"co2": OVERFLOW}, **at(3)),
        tele(seq=5, points={"co2": stats(530)}, **at(4)),
        tele(seq=5, points={"co2": stats(530)}, **at(4)),  # repeated inside the batch
        heartbeat(seq=6, devices=[device_health("co2-1")]),
    ]

    outcomes = worker.process_batch(batch, now=T0)

    assert [o.status for o in outcomes] == [D, A, R, R, R, A, D, A]
    assert [o.reason for o in outcomes if o.status is R] == [
        "invalid_json",
        "unknown_profile",
        "storage_error",
    ]
    assert windows_per_device(sessions) == {"co2-1": 3}  # seq 1, 2 and 5
    with sessions() as session:
        assert sorted(session.scalars(select(SeenSeq.seq))) == [1, 2, 5, 6]  # 3 and 4 unclaimed
        device = devices.find_device(session, gateway_id="gw-1", key="co2-1")
        assert device is not None and device.status == "online"  # the heartbeat after them
        assert device.last_seen_at == T0 + timedelta(minutes=4, seconds=10)
        latest = telemetry.latest_values(session, device_ids=[device.id])[device.id]
        assert [(v.point, v.value) for v in latest] == [("co2", 530)]
    assert (worker.accepted, worker.duplicates, worker.rejected) == (4, 2, 3)


def test_a_poison_message_is_rejected_again_when_resent_and_the_good_ones_are_not_stored_twice(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = [
        tele(seq=1, points={"co2": stats(500)}),
        tele(seq=2, points={"co2": OVERFLOW}, **at(1)),
    ]

    first = worker.process_batch(batch)
    replay = worker.process_batch(batch)

    assert [o.status for o in first] == [A, R]
    assert [o.status for o in replay] == [D, R]
    assert windows_per_device(sessions) == {"co2-1": 1}


def test_a_device_registered_by_a_rolled_back_message_is_not_remembered(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    """The rolled-back device's id is free again (SQLite reuses it; a PostgreSQL sequence does
    not): a cached id would file the next windows under another device or break a foreign key."""
    batch = [
        tele(seq=1, device="co2-new", points={"co2": OVERFLOW}),
        tele(seq=2, device="co2-other", points={"co2": stats(600)}),
        tele(seq=3, device="co2-new", points={"co2": stats(700)}, **at(1)),
    ]

    outcomes = worker.process_batch(batch)
    later = worker.process_batch(
        [tele(seq=4, device="co2-new", points={"co2": stats(710)}, **at(2))]
    )

    assert [o.status for o in outcomes] == [R, A, A]
    assert later[0].status is A
    assert windows_per_device(sessions) == {"co2-other": 1, "co2-new": 2}


def test_windows_filed_under_a_device_that_is_not_registered_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    """Windows have no foreign key of their own (migration 0005): the latest values written with
    them in the same transaction keep theirs, so an id that names no device fails the batch."""
    window = Telemetry(
        device="co2-1",
        profile=CO2,
        room="r101",
        window_start=T0,
        window_end=T0 + timedelta(seconds=10),
        points={"co2": stats(500)},
    )

    with pytest.raises(IntegrityError), sessions() as session, session.begin():
        rows = telemetry.TelemetryRows.of(session)
        rows.add(device_id=999, telemetry=window)
        rows.write(session)

    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TelemetryWindow)) == 0


def test_devices_cached_by_a_committed_batch_are_used_by_the_next_one(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process_batch([tele(seq=1, points={"co2": stats(500)})])
    worker.process_batch([tele(seq=2, points={"co2": stats(510)}, **at(1))])

    assert windows_per_device(sessions) == {"co2-1": 2}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 1


def test_an_alert_opened_and_cleared_inside_one_batch_ends_resolved(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process(*heartbeat(seq=1, devices=[device_health("co2-1")]), now=T0)
    batch = [
        tele(seq=10 + i, points={"co2": stats(v, unit="ppm")}, **at(i))
        for i, v in enumerate([900, 1200, 1300, 950])
    ]

    assert {o.status for o in worker.process_batch(batch)} == {A}

    with sessions() as session:
        (alert,) = session.scalars(select(Alert)).all()
    assert (alert.state, alert.school_id, alert.value) == ("resolved", "s-1", 1200)
    assert alert.opened_at == T0 + timedelta(minutes=1, seconds=10)
    assert alert.cleared_at == T0 + timedelta(minutes=3, seconds=10)


def test_an_alert_left_active_by_one_batch_is_cleared_by_the_next(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    worker.process_batch(
        [event(seq=1, state=EventState.RAISED), tele(seq=2, points={"co2": stats(1200)})]
    )
    worker.process_batch(
        [
            event(seq=3, state=EventState.CLEARED, at=T0 + timedelta(minutes=1)),
            tele(seq=4, points={"co2": stats(800)}, **at(1)),
        ]
    )

    with sessions() as session:
        states = {
            (a.source, a.rule): (a.state, a.cleared_at is not None)
            for a in session.scalars(select(Alert))
        }
    assert states == {
        ("edge", "gas_above_alarm_1"): ("open", True),  # level II: a person resolves it
        ("hub", "co2_above_hygiene_limit"): ("resolved", True),  # level IV resolves itself
    }


def test_when_the_database_is_unreachable_every_decodable_message_is_kept(
    profiles: dict[str, Profile],
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test?connect_timeout=2")
    worker = IngestWorker(make_sessionmaker(engine), profiles=profiles)
    try:
        outcomes = worker.process_batch(
            [
                tele(seq=1, points={"co2": stats(500)}),
                (uplink_topic("gw-1", MessageKind.TELEMETRY), b"{not json"),
                heartbeat(seq=2),
            ]
        )
    finally:
        engine.dispose()

    assert [(o.status, o.reason) for o in outcomes] == [
        (K, "storage_unavailable"),
        (R, "invalid_json"),
        (K, "storage_unavailable"),
    ]
    assert (worker.kept, worker.rejected) == (2, 1)


def test_a_clean_batch_is_stored_set_based_without_a_replay(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = [tele(seq=i, points={"co2": stats(500 + i)}, **at(i)) for i in range(1, 6)]
    batch.append(batch[0])  # repeated inside the batch: one claim, one duplicate

    outcomes = worker.process_batch(batch)

    assert [o.status for o in outcomes] == [A, A, A, A, A, D]
    assert worker.replayed_batches == 0
    assert windows_per_device(sessions) == {"co2-1": 5}
    with sessions() as session:
        device = devices.find_device(session, gateway_id="gw-1", key="co2-1")
        assert device is not None
        latest = telemetry.latest_values(session, device_ids=[device.id])[device.id]
        assert [(v.point, v.value) for v in latest] == [("co2", 505)]  # the newest window's
        assert device.last_seen_at == T0 + timedelta(minutes=5, seconds=10)


def test_a_poison_message_makes_the_batch_replay_with_savepoints_and_skips_are_counted_once(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    mixed = TelemetryBatch(
        windows=[
            Telemetry(**{**tele_window("co2-1", 600).model_dump(), "profile": "nope_v9"}),
            tele_window("co2-2", 610),
        ]
    )
    batch = [
        tele(seq=1, points={"co2": stats(500)}),
        message("gw-1", 2, mixed),
        tele(seq=3, points={"co2": OVERFLOW}, **at(1)),
    ]

    outcomes = worker.process_batch(batch)

    assert [o.status for o in outcomes] == [A, A, R]
    assert worker.replayed_batches == 1
    assert worker.rejected_windows["unknown_profile"] == 1  # not once per pass
    assert windows_per_device(sessions) == {"co2-1": 1, "co2-2": 1}


def tele_window(device: str, co2: float) -> Telemetry:
    return Telemetry(
        device=device,
        profile=CO2,
        room="r101",
        window_start=T0,
        window_end=T0 + timedelta(seconds=10),
        points={"co2": stats(co2)},
    )


def test_a_window_stored_before_and_sent_again_under_a_new_seq_keeps_its_first_values(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    """A resent window is not a failure: the batch stays set-based (PostgreSQL's COPY, which has
    no ON CONFLICT, gives way to the conflict-tolerant insert) and its other windows are stored."""
    worker.process(*tele(seq=1, points={"co2": stats(500)}, **at(0)))
    batch = [
        tele(seq=1, points={"co2": stats(999)}, epoch="replaced", **at(0)),  # a new outbox
        tele(seq=2, points={"co2": stats(510)}, epoch="replaced", **at(1)),
        tele(seq=3, points={"co2": stats(777)}, epoch="replaced", **at(1)),  # twice in the batch
    ]

    outcomes = worker.process_batch(batch)

    assert [o.status for o in outcomes] == [A, A, A]
    assert worker.replayed_batches == 0
    with sessions() as session:
        stored = session.execute(
            select(TelemetryWindow.window_start, TelemetryWindow.mean).order_by(
                TelemetryWindow.window_start
            )
        ).all()
    assert [mean for _, mean in stored] == [500, 510]
