"""Telemetry windows and latest values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cache

from sqlalchemy import Executable, select
from sqlalchemy.orm import Session

from campus_protocol.messages import Telemetry
from cloud_hub.db.base import insert_for
from cloud_hub.db.models import LatestValue, TelemetryWindow


def store_telemetry(session: Session, *, device_id: int, telemetry: Telemetry) -> None:
    """One window row per point (a window already stored is kept as is) and the latest values
    (never moved back in time by a replayed older window): two statements, whatever the points.
    The device's own timestamps are the caller's (``devices.advance_seen``, once per batch)."""
    windows, latest = _statements(session.get_bind().dialect.name)
    connection = session.connection()
    points = telemetry.points.items()
    connection.execute(
        windows,
        [
            {
                "device_id": device_id,
                "window_start": telemetry.window_start,
                "window_end": telemetry.window_end,
                "point": point,
                "count": stats.count,
                "min": stats.min,
                "max": stats.max,
                "mean": stats.mean,
                "last": stats.last,
                "unit": stats.unit,
            }
            for point, stats in points
        ],
    )
    connection.execute(
        latest,
        [
            {
                "device_id": device_id,
                "point": point,
                "value": stats.last,
                "unit": stats.unit,
                "at": telemetry.window_end,
            }
            for point, stats in points
        ],
    )


@cache
def _statements(dialect: str) -> tuple[Executable, Executable]:
    """The window insert and the latest-value upsert, built once per dialect so their compiled
    form is cached (a ``.values([...])`` multi-row insert is compiled on every call); executed
    with one parameter set per point (DB-API executemany)."""
    windows = insert_for(dialect, TelemetryWindow).on_conflict_do_nothing(
        index_elements=["device_id", "window_start", "point"]
    )
    latest = insert_for(dialect, LatestValue)
    latest = latest.on_conflict_do_update(
        index_elements=["device_id", "point"],
        set_={
            "value": latest.excluded.value,
            "unit": latest.excluded.unit,
            "at": latest.excluded.at,
        },
        where=latest.excluded.at >= LatestValue.at,
    )
    return windows, latest


def latest_values(session: Session, *, device_ids: Iterable[int]) -> dict[int, list[LatestValue]]:
    """Latest value rows per device id, ordered by point."""
    ids = list(device_ids)
    result: dict[int, list[LatestValue]] = defaultdict(list)
    if not ids:
        return result
    query = select(LatestValue).where(LatestValue.device_id.in_(ids)).order_by(LatestValue.point)
    for row in session.scalars(query):
        result[row.device_id].append(row)
    return result


def windows_of(session: Session, *, device_id: int) -> list[TelemetryWindow]:
    """Stored windows of one device, oldest first."""
    query = (
        select(TelemetryWindow)
        .where(TelemetryWindow.device_id == device_id)
        .order_by(TelemetryWindow.window_start, TelemetryWindow.point)
    )
    return list(session.scalars(query))
