"""``campus hub``: serve (API + ingest), ingest, migrate, validate, kpis."""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import aiomqtt
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from campus_config import ConfigError
from campus_mqtt import make_client
from cloud_hub.alerts.health import health_runner
from cloud_hub.alerts.webhooks import Notifier
from cloud_hub.auth import audit
from cloud_hub.auth.cli import app as user_app
from cloud_hub.db import schema
from cloud_hub.db.base import make_engine, make_sessionmaker, write_transaction
from cloud_hub.federation import city
from cloud_hub.federation.ingest import worker_for
from cloud_hub.ingest.consumer import IngestConsumer, broker_endpoint
from cloud_hub.ingest.worker import IngestWorker
from cloud_hub.kpis.compute import LessonTimes, Level, compute_kpis
from cloud_hub.kpis.export import kpi_rows, to_csv
from cloud_hub.registry import RegistryError, import_registry, read_registry
from cloud_hub.settings import HubSettings, load_hub_settings
from cloud_hub.sinks.influx import sink_for
from device_profiles.errors import ProfileError
from device_profiles.loader import load_profiles, profile_files
from device_profiles.schema import Profile

app = typer.Typer(
    help="The cloud hub: REST API, MQTT ingest and its database.", no_args_is_help=True
)
app.add_typer(user_app, name="user")
console = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="hub.yaml (optional; CAMPUS_HUB_* env also applies)"),
]
DatabaseOpt = Annotated[str | None, typer.Option(help="SQLAlchemy URL, e.g. postgresql://host/db")]
BrokerHostOpt = Annotated[str | None, typer.Option(help="Hub broker host.")]
BrokerPortOpt = Annotated[int | None, typer.Option(help="Hub broker port.")]
BrokerUserOpt = Annotated[str | None, typer.Option(help="Hub broker username (default hub).")]
BrokerPasswordOpt = Annotated[
    str | None, typer.Option(help="Hub broker password (prefer CAMPUS_HUB_BROKER__PASSWORD).")
]
BrokerCaOpt = Annotated[
    Path | None, typer.Option(help="CA certificate that signed the hub broker's TLS certificate.")
]
ProfilesOpt = Annotated[
    Path | None,
    typer.Option(
        "--profiles",
        help="A directory of extra device profiles (*.yaml), as the agents load them.",
        exists=True,
        file_okay=False,
    ),
]
DevelopmentOpt = Annotated[
    bool | None, typer.Option("--development/--no-development", help="Allow placeholder secrets.")
]


def _load(
    config: Path | None,
    *,
    database_url: str | None = None,
    broker_host: str | None = None,
    broker_port: int | None = None,
    broker_username: str | None = None,
    broker_password: str | None = None,
    broker_ca_file: Path | None = None,
    development: bool | None = None,
    api: dict[str, Any] | None = None,
) -> HubSettings:
    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    if development is not None:
        overrides["development"] = development
    broker: dict[str, Any] = {
        key: value
        for key, value in (
            ("host", broker_host),
            ("port", broker_port),
            ("username", broker_username),
            ("password", broker_password),
        )
        if value is not None
    }
    if broker_ca_file is not None:
        broker["tls"] = {"ca_file": broker_ca_file}
    if broker:
        overrides["broker"] = broker
    if api:
        overrides["api"] = api
    try:
        return load_hub_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]invalid hub configuration[/red]\n{exc}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="API listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="API listen port.")] = None,
    database_url: DatabaseOpt = None,
    broker_host: BrokerHostOpt = None,
    broker_port: BrokerPortOpt = None,
    broker_username: BrokerUserOpt = None,
    broker_password: BrokerPasswordOpt = None,
    broker_ca_file: BrokerCaOpt = None,
    development: DevelopmentOpt = None,
    profiles: ProfilesOpt = None,
    ingest: Annotated[
        bool, typer.Option("--ingest/--no-ingest", help="Also consume the broker.")
    ] = True,
) -> None:
    """Run the REST API and (by default) the ingest worker in one process."""
    import uvicorn

    from cloud_hub.api.main import create_app

    api = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = _load(
        config,
        database_url=database_url,
        broker_host=broker_host,
        broker_port=broker_port,
        broker_username=broker_username,
        broker_password=broker_password,
        broker_ca_file=broker_ca_file,
        development=development,
        api=api,
    )
    _require_current_schema(settings.database_url)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(settings, run_ingest=ingest, profiles=_profiles(profiles)),
        host=settings.api.host,
        port=settings.api.port,
        timeout_graceful_shutdown=5,  # open event streams never end by themselves
    )


@app.command("ingest")
def ingest_command(
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    broker_host: BrokerHostOpt = None,
    broker_port: BrokerPortOpt = None,
    broker_username: BrokerUserOpt = None,
    broker_password: BrokerPasswordOpt = None,
    broker_ca_file: BrokerCaOpt = None,
    development: DevelopmentOpt = None,
    profiles: ProfilesOpt = None,
) -> None:
    """Run only the ingest worker (scale out with share_group and one MQTT username per worker)."""
    settings = _load(
        config,
        database_url=database_url,
        broker_host=broker_host,
        broker_port=broker_port,
        broker_username=broker_username,
        broker_password=broker_password,
        broker_ca_file=broker_ca_file,
        development=development,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _require_current_schema(settings.database_url)
    engine = make_engine(settings.database_url)
    influx = sink_for(settings.influx)
    sessions = make_sessionmaker(engine)
    worker = worker_for(settings, sessions, profiles=_profiles(profiles), influx=influx)
    consumer = IngestConsumer(
        worker,
        settings.broker,
        share_group=settings.share_group,
        role=settings.role,
    )

    async def run() -> None:
        jobs = [consumer.run()]
        if isinstance(worker, IngestWorker):  # a regional hub watches its gateways' health
            health = health_runner(
                settings, sessions, profiles=worker.profiles, connected=consumer.connected.is_set
            )
            jobs.append(health.run())
            if settings.webhooks:
                jobs.append(Notifier(sessions, settings.webhooks).run())
        await asyncio.gather(*jobs)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        if influx is not None:
            influx.close()
        engine.dispose()


def _require_current_schema(database_url: str) -> None:
    """Exit 1 with one line naming the fix unless the database is at the newest schema revision
    (SQLite is migrated there first: the zero set-up default)."""
    engine = make_engine(database_url)
    try:
        schema.require_head(engine)
    except schema.SchemaMismatch as exc:
        console.print(f"[red]hub not started[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0]
        console.print(f"[red]hub not started[/red]: database unavailable: {reason}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _profiles(directory: Path | None) -> dict[str, Profile]:
    """The bundled profiles plus those in ``directory``; a clash or a bad file exits 2."""
    try:
        profiles = load_profiles()
        if directory is None:
            return profiles
        extra = load_profiles(profile_files(directory))
    except ProfileError as exc:
        console.print(f"[red]invalid device profile[/red]: {exc}")
        raise typer.Exit(2) from None
    clash = sorted(set(extra) & set(profiles))
    if clash:
        console.print(f"[red]{directory}[/red]: ids already bundled: {', '.join(clash)}")
        raise typer.Exit(2)
    return {**profiles, **extra}


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="Registry file: .yaml, .yml or .csv.")],
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    development: DevelopmentOpt = None,
    profiles: ProfilesOpt = None,
) -> None:
    """Import districts, schools, gateways, rooms and expected devices (审核备案) in bulk.

    Imported devices are approved; other devices those gateways report then wait as pending."""
    settings = _load(config, database_url=database_url, development=development)
    known = _profiles(profiles)
    try:
        registry = read_registry(file)
    except RegistryError as exc:
        console.print(f"[red]cannot import[/red] {exc}")
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    actor = f"cli:{getpass.getuser()}"
    now = datetime.now(UTC)
    try:
        if engine.dialect.name == "sqlite":
            schema.migrate(engine)
        with write_transaction(make_sessionmaker(engine)) as session:
            summary = import_registry(
                session, registry=registry, actor=actor, at=now, profiles=known
            )
            audit.record(
                session,
                actor=actor,
                action="registry.import",
                target=str(file)[:200],
                result=audit.Result.OK,
                at=now,
                detail=f"{summary.gateways} gateways, {summary.devices} devices",
            )
    except RegistryError as exc:
        console.print(f"[red]cannot import[/red] {file}: {exc} (nothing was imported)")
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        console.print(f"[red]import failed[/red]: {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(
        f"imported {summary.districts} districts, {summary.schools} schools, "
        f"{summary.gateways} gateways, {summary.rooms} rooms, {summary.devices} devices"
    )
    for profile in sorted(summary.unknown_profiles):
        console.print(
            f"[yellow]unknown profile[/yellow] {profile!r}: its devices are registered but "
            "their telemetry is refused until the hub loads it (--profiles DIR)"
        )


@app.command()
def migrate(
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    development: DevelopmentOpt = None,
) -> None:
    """Bring the hub database to the newest schema revision (Alembic; idempotent). A database
    made before migrations existed is recognised and adopted at the baseline revision first."""
    settings = _load(config, database_url=database_url, development=development)
    engine = make_engine(settings.database_url)
    try:
        migrated = schema.migrate(engine)
    except SQLAlchemyError as exc:
        console.print(f"[red]migrate failed[/red]: {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if migrated.before == migrated.after:
        console.print(f"{where}: already at revision {migrated.after}", soft_wrap=True)
        return
    start = migrated.before or "empty database"
    if migrated.adopted:
        start = f"database made before migrations (adopted at {schema.BASELINE})"
    console.print(f"{where}: {start} -> revision {migrated.after}", soft_wrap=True)


@app.command()
def validate(
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    broker_host: BrokerHostOpt = None,
    broker_port: BrokerPortOpt = None,
    broker_username: BrokerUserOpt = None,
    broker_password: BrokerPasswordOpt = None,
    broker_ca_file: BrokerCaOpt = None,
    development: DevelopmentOpt = None,
) -> None:
    """Load the settings, then check the database and the broker accept a connection."""
    settings = _load(
        config,
        database_url=database_url,
        broker_host=broker_host,
        broker_port=broker_port,
        broker_username=broker_username,
        broker_password=broker_password,
        broker_ca_file=broker_ca_file,
        development=development,
    )
    console.print(f"settings ok: role {settings.role}")
    ok = _check_database(settings) & _check_broker(settings)
    raise typer.Exit(0 if ok else 1)


def _check_database(settings: HubSettings) -> bool:
    engine = make_engine(settings.database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        console.print(f"[red]database {where}: {exc.__class__.__name__}: {exc}[/red]")
        return False
    finally:
        engine.dispose()
    console.print(f"database {where}: ok")
    return True


def _check_broker(settings: HubSettings) -> bool:
    broker = settings.broker
    where = f"{broker.host}:{broker.port} as {broker.username}"

    async def connect() -> None:
        # the broker forces client id = username: connect as a persistent session, so a hub
        # running under this username only reconnects and its queued messages are kept
        client = make_client(
            broker_endpoint(broker), identifier=broker.client_id or broker.username, persistent=True
        )
        async with client:
            pass

    try:
        asyncio.run(connect())
    except (aiomqtt.MqttError, OSError) as exc:
        console.print(f"[red]broker {where}: {exc}[/red]")
        return False
    console.print(f"broker {where}: ok")
    return True


@app.command()
def kpis(
    id: Annotated[str, typer.Option("--id", help="The city, district or school id.")],
    level: Annotated[Level, typer.Option(help="Which kind of place --id names.")] = Level.CITY,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    at: Annotated[
        datetime | None, typer.Option(help="As of this time (UTC unless it says), default now.")
    ] = None,
) -> None:
    """Print the KPIs of a city, district or school beside their 2025 targets, read from the hub
    database (the operator's console: no scope applies; the API filters by the caller's). A
    central hub sums its regional hubs' newest district snapshots."""
    settings = _load(config, database_url=database_url, development=True)
    engine = make_engine(settings.database_url)
    now = at.replace(tzinfo=at.tzinfo or UTC) if at else datetime.now(UTC)
    try:
        with make_sessionmaker(engine)() as session:
            if settings.role == "central":
                report = city.city_kpis(session, level=level, id=id, scope=None, now=now)
            else:
                report = compute_kpis(
                    session,
                    level=level,
                    id=id,
                    scope=None,
                    now=now,
                    profiles=load_profiles(),
                    lessons=LessonTimes.from_settings(settings.kpi),
                )
    except SQLAlchemyError as exc:
        console.print(f"[red]cannot read the hub database[/red]: {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if report is None:
        console.print(f"[red]no {level.value} {id!r} in the {settings.role} hub's database[/red]")
        raise typer.Exit(1)
    if csv_output:
        sys.stdout.write(to_csv(report))
        return
    title = f"KPIs of {level.value} {id}: {report.schools} schools, {report.at:%Y-%m-%d %H:%M} UTC"
    if settings.role == "central":
        title += " (central hub: the regional hubs' newest district snapshots)"
    table = Table(title=title)
    for column in ("KPI", "value", "target 2025", "meets", "numerator / denominator"):
        table.add_column(column)
    for row in kpi_rows(report):
        value = "-" if row["value"] is None else f"{row['value']} {row['unit']}"
        target = "none" if row["target_2025"] is None else f"{row['target_2025']} {row['unit']}"
        meets = {True: "yes", False: "no", None: "-"}[row["meets_target"]]  # type: ignore[index]
        table.add_row(str(row["name"]), value, target, meets,
                      f"{row['numerator']} / {row['denominator']}")  # fmt: skip
    console.print(table)
