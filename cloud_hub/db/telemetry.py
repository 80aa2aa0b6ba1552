"""Telemetry windows and latest values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Dialect, Insert, select
from sqlalchemy.orm import Session

from campus_protocol.messages import Telemetry
from cloud_hub.db.base import UtcDateTime, insert_for
from cloud_hub.db.models import LatestValue, TelemetryWindow

WINDOW_COLUMNS = (
    "device_id", "window_start", "window_end", "point",
    "count", "min", "max", "mean", "last", "unit",
)  # fmt: skip
LATEST_COLUMNS = ("device_id", "point", "value", "unit", "at")


class TelemetryRows:
    """Window rows and latest values gathered over many messages, written with two set-based
    statements (DB-API executemany): a window already stored is kept as is, and a latest value
    never moves back in time (a replayed older window leaves it alone). The device's own
    timestamps are the caller's (``devices.advance_seen``, once per batch).

    Rows are plain tuples handed to the driver as they are (``exec_driver_sql``): timestamps are
    converted to the database's form once per window (as SQLAlchemy would bind them), not once per
    point and column by SQLAlchemy's type processing."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._stored = _stored_datetime(dialect)
        self.windows: list[tuple[object, ...]] = []  # in WINDOW_COLUMNS order
        self.latest: dict[tuple[int, str], tuple[object, ...]] = {}  # in LATEST_COLUMNS order
        self._newest: dict[tuple[int, str], datetime] = {}
        self._converted: dict[datetime, object] = {}  # windows of one batch share their times

    @classmethod
    def of(cls, session: Session) -> TelemetryRows:
        """Rows for the database ``session`` writes to."""
        return cls(session.get_bind().dialect)

    def __len__(self) -> int:
        return len(self.windows)

    def add(self, *, device_id: int, telemetry: Telemetry) -> None:
        """One window row per point; the newest value per (device, point) for latest values."""
        end = telemetry.window_end
        start, stored_end = self._convert(telemetry.window_start), self._convert(end)
        for point, stats in telemetry.points.items():
            self.windows.append(
                (device_id, start, stored_end, point, stats.count, stats.min, stats.max,
                 stats.mean, stats.last, stats.unit)
            )  # fmt: skip
            key = (device_id, point)
            held = self._newest.get(key)
            if held is None or end >= held:
                self._newest[key] = end
                self.latest[key] = (device_id, point, stats.last, stats.unit, stored_end)

    def _convert(self, at: datetime) -> object:
        stored = self._converted.get(at)
        if stored is None:
            stored = self._converted[at] = self._stored(at)
        return stored

    def write(self, session: Session) -> None:
        """Write what was gathered (two statements whatever the count) and start empty again."""
        if not self.windows:
            return
        windows, latest = _statements(self._dialect)
        connection = session.connection()
        connection.exec_driver_sql(windows, self.windows)
        connection.exec_driver_sql(latest, list(self.latest.values()))
        self.windows, self.latest, self._newest, self._converted = [], {}, {}, {}


def _stored_datetime(dialect: Dialect) -> Callable[[datetime], object]:
    """What SQLAlchemy itself binds for a ``UtcDateTime`` on ``dialect``."""
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None  # a TypeDecorator always has one
    return processor


def _statements(dialect: Dialect) -> tuple[str, str]:
    if dialect.name not in _SQL:
        _SQL[dialect.name] = _build_statements(dialect)
    return _SQL[dialect.name]


_SQL: dict[str, tuple[str, str]] = {}


def _build_statements(dialect: Dialect) -> tuple[str, str]:
    """The window insert and the latest-value upsert as the driver's SQL, positional parameters
    in ``WINDOW_COLUMNS`` / ``LATEST_COLUMNS`` order, built once per dialect."""
    windows = insert_for(dialect.name, TelemetryWindow).on_conflict_do_nothing(
        index_elements=["device_id", "window_start", "point"]
    )
    latest = insert_for(dialect.name, LatestValue)
    latest = latest.on_conflict_do_update(
        index_elements=["device_id", "point"],
        set_={
            "value": latest.excluded.value,
            "unit": latest.excluded.unit,
            "at": latest.excluded.at,
        },
        where=latest.excluded.at >= LatestValue.at,
    )
    return (
        _positional(windows, dialect, WINDOW_COLUMNS),
        _positional(latest, dialect, LATEST_COLUMNS),
    )


def _positional(statement: Insert, dialect: Dialect, columns: tuple[str, ...]) -> str:
    """``statement`` as the driver's SQL with positional parameters in ``columns`` order."""
    paramstyle = "format" if dialect.name == "postgresql" else "qmark"
    positional = type(dialect)(paramstyle=paramstyle)  # type: ignore[call-arg]
    compiled = statement.compile(dialect=positional, column_keys=list(columns))
    if tuple(compiled.positiontup or ()) != columns:
        raise RuntimeError(f"{columns} is not the parameter order of {compiled.string}")
    return compiled.string


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
