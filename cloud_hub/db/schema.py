"""The hub schema, kept by Alembic migrations (``cloud_hub/db/migrations``) on SQLite and
PostgreSQL alike: ``campus hub migrate`` runs them, and an SQLite hub runs them at start-up (zero
set-up), so the migration path is the one source of truth. A database made before migrations
existed (tables, no ``alembic_version``) is recognised and stamped at the baseline first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, MetaData, inspect

BASELINE = "0001"
"""The schema of the releases before migrations (``create_all``): what such a database holds."""

_MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Migrated:
    before: str | None  # revision found (None: empty database or made before migrations)
    after: str
    adopted: bool  # a database made before migrations was stamped at the baseline


def target_metadata() -> MetaData:
    """Every hub table, as the models declare them."""
    from cloud_hub.auth import models as auth_models  # noqa: F401 - registers the tables
    from cloud_hub.db import models  # noqa: F401 - registers the tables on Base.metadata
    from cloud_hub.db.base import Base
    from cloud_hub.federation import models as federation_models  # noqa: F401 - the same

    return Base.metadata


def alembic_config(connection: Connection) -> Config:
    """An Alembic config that runs on ``connection`` (no ini file, no URL)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision."""
    revision = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class SchemaMismatch(Exception):
    """The database is not at the revision this code needs; the message names the fix."""

    def __init__(self, message: str, *, behind: bool) -> None:
        super().__init__(message)
        self.behind = behind  # ``campus hub migrate`` brings it to the head


def mismatch(engine: Engine) -> SchemaMismatch | None:
    """Why the database is not at the newest revision, or None when it is."""
    with engine.connect() as connection:
        found = current(connection)
    needed = head()
    if found == needed:
        return None
    if found is None:
        return SchemaMismatch(
            f"the database has no hub schema revision (empty, or made before migrations), this"
            f" hub needs {needed}: run `campus hub migrate` first",
            behind=True,
        )
    try:
        ScriptDirectory(str(_MIGRATIONS)).get_revision(found)
    except CommandError:
        return SchemaMismatch(
            f"the database is at schema revision {found}, which this hub does not know (a newer"
            f" release migrated it; this one needs {needed}): run that release or a newer one",
            behind=False,
        )
    return SchemaMismatch(
        f"the database is at schema revision {found}, this hub needs {needed}: run"
        " `campus hub migrate` first",
        behind=True,
    )


def require_head(engine: Engine) -> None:
    """Raise ``SchemaMismatch`` unless the database is at the newest revision. SQLite (the
    embedded, zero set-up default) is migrated there first; PostgreSQL is migrated only by
    ``campus hub migrate``, never by a starting hub."""
    problem = mismatch(engine)
    if problem is not None and problem.behind and engine.dialect.name == "sqlite":
        migrate(engine)
        problem = mismatch(engine)
    if problem is not None:
        raise problem


def create_current(engine: Engine) -> None:
    """The newest schema straight from the models, stamped at the newest revision: the fast way to
    a throw-away database (tests). ``tests/hub/test_migrations.py`` proves it equal to what the
    migrations build, so the migrations stay the source of truth."""
    with engine.begin() as connection:
        target_metadata().create_all(connection)
        command.stamp(alembic_config(connection), "head")


def migrate(engine: Engine) -> Migrated:
    """Upgrade the database to the newest revision, in one transaction."""
    with engine.begin() as connection:
        before = current(connection)
        config = alembic_config(connection)
        adopted = before is None and inspect(connection).has_table("gateway")
        if adopted:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        after = current(connection)
    assert after is not None
    return Migrated(before=before, after=after, adopted=adopted)
