"""Hub fixtures: the same tests run on SQLite and on PostgreSQL (a throw-away schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker
from device_profiles.loader import load_profiles
from device_profiles.rules import AlertRule, ConditionKind
from device_profiles.schema import Profile
from tests.postgres_support import postgres_schema


@pytest.fixture(scope="session")
def profiles() -> dict[str, Profile]:
    """The bundled profiles, with the CO2 sensor's thresholds evaluated at the hub (on each
    window's mean), so these tests exercise hub rules; the bundled profile runs them at the edge."""
    profiles = load_profiles()
    co2 = profiles["sensecap_s_co2_03"]
    hub_rules = [
        AlertRule(**{**rule.model_dump(include=HUB_FIELDS), "stat": "mean", "where": "hub"})
        for rule in co2.alerts
        if rule.kind is ConditionKind.THRESHOLD
    ]
    profiles[co2.id] = co2.model_copy(update={"alerts": hub_rules})
    return profiles


HUB_FIELDS = {"id", "point", "op", "threshold", "severity", "standard", "message"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: an SQLite file, or a uniquely named PostgreSQL schema dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def worker(sessions: sessionmaker[Session], profiles: dict[str, Profile]) -> IngestWorker:
    return IngestWorker(sessions, profiles=profiles)
