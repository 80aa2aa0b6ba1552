"""Telemetry windows and latest values."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import psycopg
from sqlalchemy import Connection, Dialect, Insert, select
from sqlalchemy.orm import Session

from campus_protocol.messages import Telemetry
from cloud_hub.db.base import insert_for, positional_sql, stored_datetime
from cloud_hub.db.models import LatestValue, TelemetryWindow

WINDOW_COLUMNS = (
    "device_id", "window_start", "window_end", "point",
    "count", "min", "max", "mean", "last", "unit",
)  # fmt: skip
LATEST_COLUMNS = ("device_id", "point", "value", "unit", "at")


class TelemetryRows:
    """Window rows and latest values gathered over many messages, written set-based: a window
    already stored is kept as is, and a latest value never moves back in time (a replayed older
    window leaves it alone). The device's own timestamps are the caller's
    (``devices.advance_seen``, once per batch).

    Windows go to the database in one statement per batch: on PostgreSQL a binary ``COPY`` (under
    a savepoint; when any row is refused, e.g. a window stored before, it is rolled back and the
    rows go through ``INSERT … ON CONFLICT DO NOTHING`` instead), on SQLite that insert as one
    DB-API executemany. Latest values are one ``ON CONFLICT DO UPDATE`` executemany.

    Rows are plain tuples handed to the driver as they are: timestamps are converted to the
    database's form once per window (as SQLAlchemy would bind them), not once per point and
    column by SQLAlchemy's type processing."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._stored = stored_datetime(dialect)
        self.windows: list[tuple[object, ...]] = []  # in WINDOW_COLUMNS order
        # per (device, point): the newest window end seen and that window's row
        self._latest: dict[tuple[int, str], tuple[datetime, tuple[object, ...]]] = {}
        self._device_newest: dict[int, datetime] = {}
        self._converted: dict[datetime, object] = {}  # windows of one batch share their times
        self._span: tuple[datetime, datetime, object, object] | None = None  # the last window's

    @classmethod
    def of(cls, session: Session) -> TelemetryRows:
        """Rows for the database ``session`` writes to."""
        return cls(session.get_bind().dialect)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def newest(self) -> dict[int, datetime]:
        """The end of each device's newest window gathered."""
        return self._device_newest

    @property
    def latest(self) -> list[tuple[object, ...]]:
        """The latest value per (device, point), in ``LATEST_COLUMNS`` order."""
        return [(r[0], r[3], r[8], r[9], r[2]) for _, r in self._latest.values()]

    def add(self, *, device_id: int, telemetry: Telemetry) -> None:
        """One window row per point; the newest value per (device, point) for latest values."""
        end = telemetry.window_end
        start, stored_end = self._stored_span(telemetry.window_start, end)
        rows = [
            (device_id, start, stored_end, point, stats.count, stats.min, stats.max,
             stats.mean, stats.last, stats.unit)
            for point, stats in telemetry.points.items()
        ]  # fmt: skip
        self.windows += rows
        latest = self._latest
        newest = self._device_newest.get(device_id)
        if newest is None or end >= newest:  # the device's newest window: every point is newest
            self._device_newest[device_id] = end
            for row in rows:
                latest[(device_id, row[3])] = (end, row)
            return
        for row in rows:  # an older window: only points no newer window carried
            key = (device_id, row[3])
            held = latest.get(key)
            if held is None or end >= held[0]:
                latest[key] = (end, row)

    def _stored_span(self, start: datetime, end: datetime) -> tuple[object, object]:
        """``start`` and ``end`` as stored. The windows of a message mostly share their times, so
        they are compared with the last window's first (cheap for datetimes sharing a tzinfo, as
        decoded ones do) rather than hashed (an aware datetime's hash asks its tzinfo)."""
        span = self._span
        if span is not None and start == span[0] and end == span[1]:
            return span[2], span[3]
        stored = self._convert(start), self._convert(end)
        self._span = (start, end, *stored)
        return stored

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
        if self._dialect.name != "postgresql" or not _copy_windows(connection, self.windows):
            connection.exec_driver_sql(windows, self.windows)
        connection.exec_driver_sql(latest, self.latest)
        self.windows, self._latest, self._device_newest, self._converted = [], {}, {}, {}
        self._span = None


_COPY_WINDOWS = f"COPY telemetry_window ({', '.join(WINDOW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = (
    "int4", "timestamptz", "timestamptz", "varchar",
    "int4", "float8", "float8", "float8", "float8", "varchar",
)  # fmt: skip


def _copy_windows(connection: Connection, rows: list[tuple[object, ...]]) -> bool:
    """COPY ``rows`` into ``telemetry_window`` under a savepoint; False (and nothing written) when
    the database or the driver refused a row: a window stored before (a unique violation: COPY
    has no ``ON CONFLICT``), a value out of its column's range."""
    savepoint = connection.begin_nested()
    try:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(_COPY_WINDOWS) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
    except (psycopg.Error, OverflowError):  # psycopg: an int past int4
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


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
    sql, names = positional_sql(statement, dialect, column_keys=columns)
    if names != columns:
        raise RuntimeError(f"{columns} is not the parameter order of {sql}")
    return sql


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
