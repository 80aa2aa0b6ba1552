"""DeclarativeBase, engine and sessionmaker: SQLite (WAL, foreign keys) or PostgreSQL (psycopg)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, Engine, UpdateBase, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

_WRITER_OPTION = "campus_writer"
WRITER: dict[str, Any] = {_WRITER_OPTION: True}
"""Execution options for a transaction that will write: SQLite takes the write lock at BEGIN
(``BEGIN IMMEDIATE``) and waits for another writer, rather than failing on its first write when a
concurrent commit made its read snapshot stale. PostgreSQL ignores it."""


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: hub timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every hub table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys, its parent directory created and
    SQLAlchemy's documented pysqlite workaround for real transactions and SAVEPOINTs."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # pysqlite's legacy transaction control never BEGINs before a SAVEPOINT, so a savepoint
        # would not belong to the enclosing transaction; SQLAlchemy emits BEGIN instead (below).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        writer = connection.get_execution_options().get(_WRITER_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create the newest schema in an empty database the fast way (tests and throw-away
    databases): see ``cloud_hub.db.schema.create_current``; hubs run ``schema.migrate``."""
    from cloud_hub.db.schema import create_current

    create_current(engine)


def insert_missing(session: Session, model: type[Base], **values: Any) -> None:
    """Insert a registry row unless its key exists: several ingest workers may create the same
    gateway, room or device at once, and ``ON CONFLICT DO NOTHING`` waits for the other's insert
    and keeps it instead of failing the message with a unique violation. Read the row after."""
    session.execute(dialect_insert(session, model).values(**values).on_conflict_do_nothing())


def begin_write(session: Session) -> None:
    """End what ``session`` read so far (e.g. the caller's token) and begin a transaction that
    will write (``WRITER``): on SQLite a read transaction that later writes fails at once with
    "database is locked" when an ingest worker committed meanwhile; this one waits its turn."""
    session.rollback()
    session.connection(execution_options=WRITER)


@contextmanager
def write_transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction that will write, taken as such from its start (``WRITER``,
    as ``begin_write``): committed when the block ends, rolled back if it raises."""
    with sessions() as session, session.begin():
        session.connection(execution_options=WRITER)
        yield session


def dialect_insert(session: Session, model: type[Base]) -> Any:
    """``INSERT`` with the dialect's ``on_conflict_do_*`` methods (SQLite or PostgreSQL)."""
    return insert_for(session.get_bind().dialect.name, model)


def insert_for(dialect: str, model: type[Base]) -> Any:
    """``dialect_insert`` by dialect name, for statements built once and cached per dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
    raise NotImplementedError(f"database dialect {dialect!r} is not supported (sqlite, postgresql)")


def stored_datetime(dialect: Dialect) -> Callable[[datetime], object]:
    """What SQLAlchemy itself binds for a ``UtcDateTime`` on ``dialect``: for rows handed to the
    driver as they are (``positional_sql``)."""
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None  # a TypeDecorator always has one
    return processor


def positional_sql(
    statement: UpdateBase, dialect: Dialect, *, column_keys: Sequence[str] | None = None
) -> tuple[str, tuple[str, ...]]:
    """``statement`` as the driver's own SQL with positional parameters, and the parameter name
    at each position (a parameter used twice is named twice). Built once, run with plain tuples
    through ``exec_driver_sql``: SQLAlchemy's per-execution work (cache key, parameter processing)
    costs more than a small statement itself, so the caller binds stored forms itself
    (``stored_datetime``)."""
    paramstyle = "format" if dialect.name == "postgresql" else "qmark"
    positional = type(dialect)(paramstyle=paramstyle)  # type: ignore[call-arg]
    keys = list(column_keys) if column_keys is not None else None
    compiled = statement.compile(dialect=positional, column_keys=keys)
    return compiled.string, tuple(compiled.positiontup or ())
