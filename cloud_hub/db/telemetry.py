"""Telemetry windows and latest values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from campus_protocol.messages import Telemetry
from cloud_hub.db.base import dialect_insert
from cloud_hub.db.models import Device, LatestValue, TelemetryWindow


def store_telemetry(session: Session, *, device: Device, telemetry: Telemetry) -> None:
    """One window row per point (a window already stored is kept as is) and the latest values
    (never moved back in time by a replayed older window)."""
    windows = [
        {
            "device_id": device.id,
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
        for point, stats in telemetry.points.items()
    ]
    session.execute(
        dialect_insert(session, TelemetryWindow)
        .values(windows)
        .on_conflict_do_nothing(index_elements=["device_id", "window_start", "point"])
    )
    latest = [
        {
            "device_id": device.id,
            "point": point,
            "value": stats.last,
            "unit": stats.unit,
            "at": telemetry.window_end,
        }
        for point, stats in telemetry.points.items()
    ]
    insert = dialect_insert(session, LatestValue).values(latest)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["device_id", "point"],
            set_={
                "value": insert.excluded.value,
                "unit": insert.excluded.unit,
                "at": insert.excluded.at,
            },
            where=insert.excluded.at >= LatestValue.at,
        )
    )
    if device.last_seen_at is None or telemetry.window_end > device.last_seen_at:
        device.last_seen_at = telemetry.window_end


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
