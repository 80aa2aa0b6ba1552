"""Alembic migrations keep the hub schema on SQLite and PostgreSQL: from an empty database, from a
database made by a release before migrations (tables, no version), and they build exactly what
the models declare (the fast ``create_schema`` of the tests is proven equal here)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from typer.testing import CliRunner

from cloud_hub.cli import app
from cloud_hub.db import schema
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import District, School

runner = CliRunner()


def differences(engine: Engine) -> list[object]:
    """What the database lacks or has beyond the models (Alembic autogenerate's comparison)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [
            diff
            for diff in compare_metadata(context, schema.target_metadata())
            if not (diff[0] == "remove_table" and diff[1].name == "alembic_version")
        ]


def release_before_migrations(engine: Engine) -> None:
    """What a release before migrations left behind: the baseline's tables, no version table,
    and some data."""
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), schema.BASELINE)
        connection.execute(text("DROP TABLE alembic_version"))
    with make_sessionmaker(engine)() as session, session.begin():
        session.add(District(id="d-1", name="North", city_id="c-1"))
        session.add(School(id="s-1", name="No. 1", district_id="d-1"))


def test_an_empty_database_is_migrated_to_the_models_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrated = schema.migrate(engine)
        again = schema.migrate(engine)

        assert (migrated.before, migrated.after, migrated.adopted) == (None, schema.head(), False)
        assert (again.before, again.after) == (schema.head(), schema.head())
        assert differences(engine) == []
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_adopted_and_keeps_its_data(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        release_before_migrations(engine)

        migrated = schema.migrate(engine)

        assert (migrated.before, migrated.after, migrated.adopted) == (None, schema.head(), True)
        assert differences(engine) == []
        with make_sessionmaker(engine)() as session:
            assert session.scalars(select(School.name)).all() == ["No. 1"]
    finally:
        engine.dispose()


def test_the_fast_test_schema_equals_the_migrated_one_and_is_at_the_newest_revision(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        create_schema(engine)

        assert differences(engine) == []
        assert schema.migrate(engine).before == schema.head()
    finally:
        engine.dispose()


def test_campus_hub_migrate_says_what_it_did(database_url: str) -> None:
    args = ["migrate", "--database-url", database_url, "--development"]

    first = runner.invoke(app, args)
    second = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    # Rich wraps lines at 80 columns, where depends on the path's length: compare words
    assert f"empty database -> revision {schema.head()}" in " ".join(first.output.split())
    assert f"already at revision {schema.head()}" in " ".join(second.output.split())


def test_campus_hub_migrate_adopts_a_database_made_before_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    release_before_migrations(engine)
    engine.dispose()

    result = runner.invoke(app, ["migrate", "--database-url", database_url, "--development"])

    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # as Rich wrapped it at 80 columns
    assert f"made before migrations (adopted at {schema.BASELINE})" in words


def a_0002_hub_with_alerts(engine: Engine) -> None:
    """A hub at revision 0002 (alerts ``active | cleared``) with a device, a room, an alert of
    each state, and two active alerts for one key (an older hub checked before it inserted)."""
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), "0002")
        connection.execute(text("INSERT INTO gateway (id, agent_version) VALUES ('gw-1', '')"))
        connection.execute(
            text("INSERT INTO room (gateway_id, key, name) VALUES ('gw-1', 'lab-1', 'Lab')")
        )
        connection.execute(
            text(
                "INSERT INTO device (gateway_id, key, profile, protocol, status, last_error) "
                "VALUES ('gw-1', 'gas-1', 'gas_detector_v1', 'modbus_tcp', 'online', '')"
            )
        )
        alerts = [
            (1, "co2", "active", "2026-11-30 08:00:00+00:00", None),
            (2, "co2", "cleared", "2026-11-29 08:00:00+00:00", "2026-11-29 09:00:00+00:00"),
            (3, "gas", "active", "2026-11-30 07:00:00+00:00", None),
            (4, "gas", "active", "2026-11-30 07:00:01+00:00", None),
        ]
        for alert_id, rule, state, opened, cleared in alerts:
            connection.execute(
                text(
                    "INSERT INTO alert (id, gateway_id, device, point, rule, severity, state,"
                    " source, opened_at, cleared_at, value, threshold, standard, message)"
                    " VALUES (:id, 'gw-1', 'gas-1', 'p', :rule, 'II', :state, 'hub',"
                    " :opened, :cleared, 1.0, 0.5, '', '')"
                ),
                {
                    "id": alert_id,
                    "rule": rule,
                    "state": state,
                    "opened": opened,
                    "cleared": cleared,
                },
            )


def test_a_0002_hub_is_migrated_with_its_alerts_in_the_new_states(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        a_0002_hub_with_alerts(engine)

        migrated = schema.migrate(engine)

        assert (migrated.before, migrated.after) == ("0002", schema.head())
        assert differences(engine) == []
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, state, resolved_by, occurrences FROM alert ORDER BY id")
            ).all()
            approval = connection.execute(text("SELECT approval FROM device")).scalar_one()
            room_type = connection.execute(text("SELECT type FROM room")).scalar_one()
        assert [tuple(row) for row in rows] == [
            (1, "open", "", 1),
            (2, "resolved", "hub", 1),
            (3, "resolved", "migration 0003", 1),  # the older of two active for one key
            (4, "open", "", 1),
        ]
        assert (approval, room_type) == ("approved", "")
    finally:
        engine.dispose()


def a_0004_hub_with_windows(engine: Engine) -> None:
    """A hub at revision 0004 with a device, one stored window and its latest value."""
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), "0004")
        connection.execute(text("INSERT INTO gateway (id, agent_version) VALUES ('gw-1', '')"))
        connection.execute(
            text(
                "INSERT INTO device (id, gateway_id, key, profile, protocol, status, last_error,"
                " approval, approval_by) VALUES (1, 'gw-1', 'co2-1', 'sensecap_s_co2_03',"
                " 'lorawan', 'online', '', 'approved', '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO telemetry_window (device_id, window_start, window_end, point, count,"
                " min, max, mean, last, unit) VALUES (1, '2026-11-30 08:00:00+00:00',"
                " '2026-11-30 08:00:10+00:00', 'co2', 10, 600, 640, 612, 630, 'ppm')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO latest_value (device_id, point, value, unit, at)"
                " VALUES (1, 'co2', 630, 'ppm', '2026-11-30 08:00:10+00:00')"
            )
        )


def referred_tables(engine: Engine, table: str) -> list[str]:
    return [key["referred_table"] for key in inspect(engine).get_foreign_keys(table)]


def test_a_0004_hub_keeps_its_windows_and_only_their_device_key_goes(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        a_0004_hub_with_windows(engine)

        migrated = schema.migrate(engine)

        assert (migrated.before, migrated.after) == ("0004", schema.head())
        assert differences(engine) == []
        assert referred_tables(engine, "telemetry_window") == []
        assert referred_tables(engine, "latest_value") == ["device"]
        with engine.connect() as connection:
            windows = connection.execute(
                text("SELECT device_id, point, mean FROM telemetry_window")
            ).all()
        assert [tuple(row) for row in windows] == [(1, "co2", 612.0)]
    finally:
        engine.dispose()


def test_migration_0005_goes_back_down_with_the_windows_device_key(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        a_0004_hub_with_windows(engine)
        schema.migrate(engine)

        with engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0004")

        assert referred_tables(engine, "telemetry_window") == ["device"]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM telemetry_window")).scalar() == 1
    finally:
        engine.dispose()


def a_0005_hub_with_a_command(engine: Engine) -> None:
    """A hub at revision 0005 with a gateway and one finished command."""
    with engine.begin() as connection:
        command.upgrade(schema.alembic_config(connection), "0005")
        connection.execute(text("INSERT INTO gateway (id, agent_version) VALUES ('gw-1', '')"))
        connection.execute(
            text(
                "INSERT INTO device_command (id, gateway_id, device, name, target, value, status,"
                " detail, readback, origin, requested_by, created_at, updated_at, expires_at,"
                " sends) VALUES ('c-1', 'gw-1', 'lights-1', 'write', 'level', 120, 'succeeded',"
                " 'written and read back', 120, 'hub', 'admin', '2026-11-30 08:00:00+00:00',"
                " '2026-11-30 08:00:01+00:00', '2026-11-30 08:01:00+00:00', 1)"
            )
        )


def test_a_0005_hub_keeps_its_commands_with_no_attempts_reported(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        a_0005_hub_with_a_command(engine)

        migrated = schema.migrate(engine)

        assert (migrated.before, migrated.after) == ("0005", schema.head())
        assert differences(engine) == []
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT id, status, readback, attempts FROM device_command")
            ).one()
        assert tuple(row) == ("c-1", "succeeded", 120.0, 0)
    finally:
        engine.dispose()


def test_migration_0006_goes_back_down_without_the_attempts(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        a_0005_hub_with_a_command(engine)
        schema.migrate(engine)

        with engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0005")

        columns = [c["name"] for c in inspect(engine).get_columns("device_command")]
        assert "attempts" not in columns
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM device_command")).scalar() == 1
    finally:
        engine.dispose()
