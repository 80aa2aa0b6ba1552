"""Two ``campus hub ingest`` processes share one subscription and one PostgreSQL: every window the
gateways' outboxes accepted is stored exactly once, also when one worker is killed with SIGKILL
mid-stream (and restarted, as its supervisor would: its persistent session holds what the broker
had handed it).

Real parts: Mosquitto with TLS, passwords, the ACL and client id = username (each worker logs in
as its own hub user, ``hub`` and ``hub-b``, subscribed to ``$share/ingest/...``); the hub's ingest
as real processes; the agent's own ``Outbox`` + ``HubUplink`` for the gateways. Counts are read
from PostgreSQL with plain psycopg, from outside the processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import make_engine
from cloud_hub.db.schema import migrate
from tests.e2e.test_delivery_faults import HubProcess, gateway
from tests.postgres_support import postgres_schema
from tests.waiting import eventually

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]
GATEWAYS = ("gw-1", "gw-2")


def stored(url: str) -> tuple[int, int, int]:
    """(window rows, distinct (device, window start), dedupe claims), read with plain psycopg."""
    dsn, _, options = url.removeprefix("postgresql+psycopg://").partition("?")
    schema = options.removeprefix("options=-csearch_path%3D")
    with psycopg.connect(f"postgresql://{dsn}", options=f"-csearch_path={schema}") as db:
        rows, distinct = db.execute(
            "SELECT count(*), count(DISTINCT (device_id, window_start)) FROM telemetry_window"
        ).fetchone() or (0, 0)
        (claims,) = db.execute("SELECT count(*) FROM seen_seq").fetchone() or (0,)
    return int(rows), int(distinct), int(claims)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(
        workdir=tmp_path / "mosquitto", gateways=list(GATEWAYS), hub_workers=["hub-b"]
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_schema("scale_out") as url:
        engine = make_engine(url)
        migrate(engine)  # what `campus hub migrate` does before the workers start
        engine.dispose()
        yield url


def worker(broker: MosquittoBroker, database: str, username: str, logs: Path) -> HubProcess:
    logs.mkdir()
    hub = HubProcess(broker, logs / "unused.db", logs)
    is_hub = username == broker.hub_username
    hub.env |= {
        "CAMPUS_HUB_DATABASE_URL": database,
        "CAMPUS_HUB_SHARE_GROUP": "ingest",
        "CAMPUS_HUB_BROKER__USERNAME": username,
        "CAMPUS_HUB_BROKER__PASSWORD": (
            broker.hub_password if is_hub else broker.password_for(username)
        ),
    }
    return hub


async def test_two_workers_on_a_shared_subscription_store_every_window_once_despite_sigkill(
    broker: MosquittoBroker, database: str, tmp_path: Path
) -> None:
    first = worker(broker, database, "hub", tmp_path / "worker-a")
    second = worker(broker, database, "hub-b", tmp_path / "worker-b")
    try:
        await first.start()
        await second.start()
        async with (
            gateway(broker, "gw-1", tmp_path) as gw1,
            gateway(broker, "gw-2", tmp_path) as gw2,
        ):
            for _tick in range(2):  # both workers take a share of live data
                gw1.append(40)
                gw2.append(40)
                await eventually(lambda: stored(database)[0] >= gw1.appended + gw2.appended, 30,
                            "live data stored")  # fmt: skip
            gw1.append(300)  # mid-stream: SIGKILL one worker while its share is in flight
            gw2.append(300)
            first.kill()
            before = stored(database)[0]
            await eventually(lambda: gw1.outbox.depth() == gw2.outbox.depth() == 0, 30, "published")
            await eventually(
                lambda: stored(database)[0] > before + 100, 30, "the other worker's share"
            )
            await first.start()  # its supervisor restarts it; its session still holds its share
            total = gw1.appended + gw2.appended
            await eventually(lambda: stored(database)[0] >= total, 60, f"{total} windows stored")
            await eventually(lambda: stored(database)[2] >= total, 10, "every message claimed")
    finally:
        first.stop()
        second.stop()

    rows, distinct, claims = stored(database)
    assert (rows, distinct) == (total, total), "each window stored exactly once"
    assert claims == total  # one window per message: every message claimed once
    logs = first.log.read_text() + second.log.read_text()
    assert "Traceback" not in logs
