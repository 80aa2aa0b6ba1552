"""The hub application: the lifespan owns the database engine and, optionally, the ingest worker
and the command publisher (both talk to the hub broker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from fastapi import Depends, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.alerts.health import health_runner
from cloud_hub.alerts.webhooks import Notifier
from cloud_hub.api.reported import regional_only
from cloud_hub.api.routes import (
    alerts,
    audit,
    auth,
    city,
    commands,
    devices,
    districts,
    gateways,
    kpis,
    schools,
    series,
    stream,
    system,
    tier,
)
from cloud_hub.api.routes.web import add_web
from cloud_hub.auth.oidc import JwtVerifier
from cloud_hub.commands import CommandPublisher
from cloud_hub.db.base import make_engine, make_sessionmaker
from cloud_hub.db.schema import migrate
from cloud_hub.federation.forwarder import RegionalForwarder
from cloud_hub.federation.ingest import worker_for
from cloud_hub.ingest.consumer import IngestConsumer
from cloud_hub.kpis.compute import LessonTimes
from cloud_hub.provisioning import Provisioner, ProvisioningError
from cloud_hub.settings import HubSettings
from cloud_hub.sinks.influx import sink_for
from device_profiles.loader import load_profiles
from device_profiles.schema import Profile

log = logging.getLogger(__name__)


def create_app(
    settings: HubSettings,
    *,
    run_ingest: bool = True,
    profiles: Mapping[str, Profile] | None = None,
) -> FastAPI:
    """Build the API. With ``run_ingest`` the same process consumes the hub broker too.

    An SQLite database is migrated at start-up (the zero set-up default); PostgreSQL expects
    ``campus hub migrate`` to have run.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        if engine.dialect.name == "sqlite":
            migrate(engine)
        app.state.settings = settings
        app.state.profiles = profiles if profiles is not None else load_profiles()
        app.state.sessions = make_sessionmaker(engine)
        app.state.jwt_verifier = jwt_verifier(settings)
        app.state.provisioner = Provisioner(settings.provisioning)
        if settings.provisioning is not None:
            _sync_broker_access(app.state.provisioner, app.state.sessions)
        tasks: list[asyncio.Task[None]] = []
        influx = sink_for(settings.influx) if run_ingest else None
        if run_ingest:
            app.state.ingest = IngestConsumer(
                worker_for(
                    settings, app.state.sessions, profiles=app.state.profiles, influx=influx
                ),
                settings.broker,
                share_group=settings.share_group,
                role=settings.role,
            )
            tasks.append(asyncio.create_task(app.state.ingest.run(), name="hub-ingest"))
            if settings.role == "regional":  # the central hub has no gateways to command
                app.state.commands = CommandPublisher(
                    app.state.sessions, lambda: app.state.ingest.client
                )
                tasks.append(asyncio.create_task(app.state.commands.run(), name="hub-commands"))
                app.state.health = health_runner(
                    settings,
                    app.state.sessions,
                    profiles=app.state.profiles,
                    connected=app.state.ingest.connected.is_set,
                )
                tasks.append(asyncio.create_task(app.state.health.run(), name="hub-health"))
                if settings.webhooks:
                    notifier = Notifier(app.state.sessions, settings.webhooks)
                    tasks.append(asyncio.create_task(notifier.run(), name="hub-webhooks"))
        app.state.forwarder = None
        if settings.federation is not None:
            app.state.forwarder = RegionalForwarder(
                settings.federation,
                app.state.sessions,
                profiles=app.state.profiles,
                lessons=LessonTimes.from_settings(settings.kpi),
                offline_after_s=settings.offline_after_s,
            )
            tasks.append(asyncio.create_task(app.state.forwarder.run(), name="hub-federation"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if influx is not None:
                await asyncio.to_thread(influx.close)
            engine.dispose()

    app = FastAPI(
        title="campus-iot hub", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    for module in (auth, districts, schools, alerts, kpis, city, tier, stream, audit, system):
        app.include_router(module.router)
    # what only a regional hub keeps: a central hub answers 404 naming the regional hubs to ask
    regional = [Depends(regional_only)]
    for router in (devices.router, series.router, gateways.router, commands.router):
        app.include_router(router, dependencies=regional)
    app.include_router(devices.approval_router, dependencies=regional)
    app.include_router(auth.page_router)
    add_web(app)
    return app


def _sync_broker_access(provisioner: Provisioner, sessions: sessionmaker[Session]) -> None:
    """Make the broker's password file follow the registry; a broker that is down is reloaded by
    the next approval or revocation (the hub serves meanwhile)."""
    try:
        with sessions() as session:
            provisioner.sync(session)
    except ProvisioningError as exc:
        log.error("gateway provisioning: %s", exc)


def jwt_verifier(settings: HubSettings) -> JwtVerifier | None:
    """The identity provider's JWT check, when one is configured."""
    oidc = settings.auth.oidc
    if oidc is None:
        return None
    return JwtVerifier(
        issuer=oidc.issuer,
        audience=oidc.audience,
        public_key_file=oidc.public_key_file,
        algorithms=oidc.algorithms,
        role_claim=oidc.role_claim,
        scope_claim=oidc.scope_claim,
    )
