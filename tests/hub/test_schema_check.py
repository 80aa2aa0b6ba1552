"""A starting hub refuses a database whose schema is not at the newest Alembic revision, in one
line that names the fix; PostgreSQL is migrated only by ``campus hub migrate``, while SQLite (the
zero set-up default) migrates itself at start-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from cloud_hub.cli import app
from cloud_hub.db import schema
from cloud_hub.db.base import create_schema, make_engine
from tests.postgres_support import postgres_schema

runner = CliRunner()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


def at_revision(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), revision)
    engine.dispose()


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return schema.current(connection)
    finally:
        engine.dispose()


def start(command_name: str, url: str) -> tuple[int, list[str]]:
    """Run ``campus hub <command_name>`` (it would serve: only a refusal returns); exit code and
    the non-empty output lines."""
    result = runner.invoke(app, [command_name, "--database-url", url, "--development"])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def future_release(engine: Engine) -> None:
    """A database a newer release migrated: a revision this code has never heard of."""
    create_schema(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d_future'"))


@pytest.mark.postgres
@pytest.mark.parametrize("command_name", ["serve", "ingest"])
def test_a_postgresql_hub_behind_the_newest_revision_refuses_to_start_and_names_the_fix(
    postgres_url: str, command_name: str
) -> None:
    at_revision(postgres_url, schema.BASELINE)

    code, lines = start(command_name, postgres_url)

    assert code == 1
    assert lines == [
        f"hub not started: the database is at schema revision {schema.BASELINE}, this hub needs"
        f" {schema.head()}: run `campus hub migrate` first"
    ]
    assert revision_of(postgres_url) == schema.BASELINE  # a starting hub migrates nothing


@pytest.mark.postgres
def test_an_empty_postgresql_database_is_refused_until_campus_hub_migrate_ran(
    postgres_url: str,
) -> None:
    code, lines = start("serve", postgres_url)
    assert code == 1
    assert len(lines) == 1 and "no hub schema revision" in lines[0]
    assert lines[0].endswith("run `campus hub migrate` first")

    migrated = runner.invoke(app, ["migrate", "--database-url", postgres_url, "--development"])

    assert migrated.exit_code == 0, migrated.output
    engine = make_engine(postgres_url)
    schema.require_head(engine)  # what serve checks before it starts: passes now
    engine.dispose()


def test_a_database_migrated_by_a_newer_release_is_refused_on_both_engines(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    future_release(engine)
    engine.dispose()

    code, lines = start("serve", database_url)

    assert code == 1
    assert len(lines) == 1
    assert "schema revision f00d_future, which this hub does not know" in lines[0]


def test_an_sqlite_database_behind_is_migrated_by_the_starting_hub(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    at_revision(url, schema.BASELINE)
    engine = make_engine(url)

    schema.require_head(engine)

    engine.dispose()
    assert revision_of(url) == schema.head()


def test_an_unreachable_database_is_one_line_too() -> None:
    code, lines = start("serve", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")

    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("hub not started: database unavailable:")
