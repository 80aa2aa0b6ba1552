"""A device point's history, downsampled in the database to a number of equal time buckets.

Each bucket folds the stored windows that start in it: the lowest minimum, the highest maximum,
the mean weighted by sample count, and the sample count. The grouping runs in SQL (one query, one
row per bucket), so a week of 10 s windows never crosses the wire row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, cast, func, select
from sqlalchemy.orm import Session

from cloud_hub.db.models import TelemetryWindow


@dataclass(frozen=True)
class Bucket:
    start: datetime
    min: float
    max: float
    mean: float
    count: int


def _epoch_s(dialect: str, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a stored UTC timestamp (SQLite keeps them as naive text; its Julian
    day is exact to about 50 µs, so it is rounded to the millisecond)."""
    if dialect == "sqlite":
        return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)
    return cast(func.extract("epoch", column), Float)


def _bucket_index(
    dialect: str, offset_s: ColumnElement[float], width_s: float
) -> ColumnElement[int]:
    """The bucket an offset (>= 0) falls in; SQLite truncates towards zero, PostgreSQL rounds."""
    ratio = offset_s / width_s
    return cast(ratio if dialect == "sqlite" else func.floor(ratio), Integer)


def downsample(
    session: Session,
    *,
    device_id: int,
    point: str,
    since: datetime,
    until: datetime,
    buckets: int,
) -> tuple[list[Bucket], float]:
    """The windows of ``point`` starting in ``[since, until)`` folded into at most ``buckets``
    buckets of equal width (empty buckets are left out); returns them oldest first and the
    bucket width in seconds. The buckets begin at the first stored window in the range, so a
    device with a short history is not squeezed into a few buckets of a long range."""
    in_range = (
        TelemetryWindow.device_id == device_id,
        TelemetryWindow.point == point,
        TelemetryWindow.window_start >= since,
        TelemetryWindow.window_start < until,
    )
    first = session.scalar(select(func.min(TelemetryWindow.window_start)).where(*in_range))
    if first is None:
        return [], (until - since).total_seconds() / buckets
    since = first
    width_s = max((until - since).total_seconds() / buckets, 1e-3)
    dialect = session.get_bind().dialect.name
    start_s = since.timestamp()
    index = _bucket_index(
        dialect, _epoch_s(dialect, TelemetryWindow.window_start) - start_s, width_s
    ).label("bucket")
    weight = func.sum(TelemetryWindow.count)
    query = (
        select(
            index,
            func.min(TelemetryWindow.min),
            func.max(TelemetryWindow.max),
            func.sum(TelemetryWindow.mean * TelemetryWindow.count) / func.nullif(weight, 0),
            func.avg(TelemetryWindow.mean),
            weight,
        )
        .where(*in_range)
        .group_by(index)
        .order_by(index)
    )
    result = [
        Bucket(
            start=since + timedelta(seconds=int(n) * width_s),
            min=float(low),
            max=float(high),
            mean=float(weighted if weighted is not None else plain),
            count=int(count or 0),
        )
        for n, low, high, weighted, plain, count in session.execute(query)
    ]
    return result, width_s


def unit_of(session: Session, *, device_id: int, point: str) -> str:
    """The unit of ``point`` in its newest stored window ("" when none)."""
    query = (
        select(TelemetryWindow.unit)
        .where(TelemetryWindow.device_id == device_id, TelemetryWindow.point == point)
        .order_by(TelemetryWindow.window_start.desc())
        .limit(1)
    )
    return session.scalar(query) or ""


def completeness(
    session: Session, *, device_ids: list[int], now: datetime, span: timedelta = timedelta(hours=24)
) -> dict[int, float]:
    """Per device, the share of the windows it should have sent over the last ``span`` (or since
    its first window, if later) that the hub has: distinct windows received times their mean
    length, over the time elapsed. Devices without windows in the span are left out."""
    if not device_ids:
        return {}
    dialect = session.get_bind().dialect.name
    start = _epoch_s(dialect, TelemetryWindow.window_start)
    length = _epoch_s(dialect, TelemetryWindow.window_end) - start
    since = now - span
    recent = session.execute(
        select(
            TelemetryWindow.device_id,
            func.count(func.distinct(TelemetryWindow.window_start)),
            func.avg(length),
        )
        .where(TelemetryWindow.device_id.in_(device_ids), TelemetryWindow.window_start >= since)
        .group_by(TelemetryWindow.device_id)
    ).all()
    first = dict(
        session.execute(
            select(TelemetryWindow.device_id, func.min(TelemetryWindow.window_start))
            .where(TelemetryWindow.device_id.in_([row[0] for row in recent]))
            .group_by(TelemetryWindow.device_id)
        ).all()
    )
    result: dict[int, float] = {}
    for device_id, windows, mean_length in recent:
        began = max(since, first[device_id])
        elapsed = (now - began).total_seconds()
        if elapsed > 0 and mean_length:
            result[device_id] = min(1.0, windows * float(mean_length) / elapsed)
    return result
