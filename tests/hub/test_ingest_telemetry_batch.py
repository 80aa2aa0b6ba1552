"""A telemetry message carrying many device windows is stored window by window."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from campus_protocol import PointStats, Telemetry, TelemetryBatch
from cloud_hub.db import devices, telemetry
from cloud_hub.db.models import Alert, TelemetryWindow
from cloud_hub.ingest.worker import INGEST_ERRORS, IngestWorker, OutcomeStatus
from tests.hub.builders import CO2, T0, message, stats


def window(device: str, co2: float, *, profile: str = CO2, start_s: float = 0) -> Telemetry:
    start = T0 + timedelta(seconds=start_s)
    return Telemetry(
        device=device,
        profile=profile,
        room="r101",
        window_start=start,
        window_end=start + timedelta(seconds=10),
        points={"co2": stats(co2, unit="ppm")},
    )


def stored_windows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(TelemetryWindow)) or 0


def test_every_window_of_a_batch_is_stored_under_its_own_device(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = TelemetryBatch(windows=[window(f"co2-{i}", 500 + i) for i in range(50)])

    outcome = worker.process(*message("gw-1", 1, batch))

    assert (outcome.status, outcome.kind) == (OutcomeStatus.ACCEPTED, "telemetry")
    with sessions() as session:
        device = devices.find_device(session, gateway_id="gw-1", key="co2-7")
        assert device is not None
        (stored,) = telemetry.windows_of(session, device_id=device.id)
        assert (stored.point, stored.last) == ("co2", 507)
    assert stored_windows(sessions) == 50


def test_a_batch_replayed_under_the_same_seq_is_a_duplicate_and_stores_nothing_more(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = TelemetryBatch(windows=[window("co2-1", 500), window("co2-2", 510)])

    first = worker.process(*message("gw-1", 9, batch))
    again = worker.process(*message("gw-1", 9, batch))

    assert (first.status, again.status) == (OutcomeStatus.ACCEPTED, OutcomeStatus.DUPLICATE)
    assert stored_windows(sessions) == 2


def test_a_window_of_an_unknown_profile_is_counted_and_skipped_and_the_others_stored(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    before = INGEST_ERRORS.labels(error_type="unknown_profile", stage="processing")._value.get()
    batch = TelemetryBatch(
        windows=[window("co2-1", 500), window("x-1", 1, profile="nope_v9"), window("co2-2", 510)]
    )

    outcome = worker.process(*message("gw-1", 1, batch))

    assert outcome.status is OutcomeStatus.ACCEPTED
    assert stored_windows(sessions) == 2
    assert worker.rejected_windows["unknown_profile"] == 1
    after = INGEST_ERRORS.labels(error_type="unknown_profile", stage="processing")._value.get()
    assert after == before + 1


def test_windows_from_the_future_are_skipped_wherever_they_sit_in_a_batch(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    future_s = 3600.0  # past the 300 s tolerance, whether checked before or after a good window
    batch = TelemetryBatch(
        windows=[
            window("co2-1", 500),
            window("co2-2", 510, start_s=future_s),
            window("co2-3", 520),
            window("co2-4", 530, start_s=future_s),
            window("co2-5", 540, start_s=20),
        ]
    )

    outcome = worker.process(*message("gw-1", 1, batch), now=T0 + timedelta(seconds=30))

    assert outcome.status is OutcomeStatus.ACCEPTED
    assert stored_windows(sessions) == 3
    assert worker.rejected_windows["from_the_future"] == 2


def test_a_batch_with_no_storable_window_is_rejected(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    batch = TelemetryBatch(windows=[window("x-1", 1, profile="nope_v9")])

    outcome = worker.process(*message("gw-1", 1, batch))

    assert (outcome.status, outcome.reason) == (OutcomeStatus.REJECTED, "unknown_profile")
    assert stored_windows(sessions) == 0


def test_profile_rules_fire_on_windows_inside_a_batch(
    worker: IngestWorker, sessions: sessionmaker[Session]
) -> None:
    high = PointStats(count=1, min=1500, max=1500, mean=1500, last=1500, p95=1500, unit="ppm")
    alarm = window("co2-1", 0).model_copy(update={"points": {"co2": high}})

    worker.process(*message("gw-1", 1, TelemetryBatch(windows=[window("co2-2", 500), alarm])))

    with sessions() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.value == 1500
