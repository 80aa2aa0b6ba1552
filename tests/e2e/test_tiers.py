"""The three tiers as real processes: two regional hubs, each with its own Mosquitto and two
gateways, forward to one central hub with its own Mosquitto. The central hub is killed for a
while and a regional hub is killed and restarted meanwhile; afterwards the central hub's counts
are exact: nothing lost, nothing stored twice.

Real parts: three Mosquitto processes (TLS, passwords, ACL, client id = username; each regional
hub logs in to the central broker as its node id, as a gateway does to its regional broker), three
``campus hub serve`` processes on SQLite, and the agent's own ``Outbox`` + ``HubUplink`` for the
gateways. Counts are read with plain sqlite3 from outside the processes: the central hub's
tables, and each regional hub's outbox ledger (rows it ever queued, by kind)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from campus_protocol import (
    Event,
    EventState,
    Health,
    MessageKind,
    PointStats,
    Severity,
    SiteIdentity,
    Telemetry,
)
from cloud_hub.broker import MosquittoBroker, free_port
from tests.e2e.support import kill_process, stop_process
from tests.e2e.test_delivery_faults import REPO, Gateway, gateway
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(600)
WINDOWS = 40  # per gateway, one a minute, all in an hour that has closed
REGIONS = {"region-a": "d-a", "region-b": "d-b"}
GATEWAYS = {region: [f"gw-{region[-1]}{n}" for n in (1, 2)] for region in REGIONS}
CO2 = "sensecap_s_co2_03"


def hour_ago_start() -> datetime:
    """The start of the hour before the last one: its 5-minute and hourly periods are closed."""
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


class HubServe:
    """``campus hub serve`` as a real process; ``kill()`` is SIGKILL."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.database = workdir / f"{name}.db"
        self.workdir = workdir
        self.env = {
            **os.environ,
            "CAMPUS_HUB_DATABASE_URL": f"sqlite:///{self.database}",
            **env,
        }
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        with (self.workdir / f"{self.name}-{self.starts}.log").open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "campus_cli.main",
                    "hub",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def healthy(self, **expected: str) -> None:
        """Wait until ``/healthz`` says ``expected`` (e.g. ingest="subscribed")."""

        def ok() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                health = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).json()
            except httpx.HTTPError:
                return False
            return all(health.get(key) == value for key, value in expected.items())

        await eventually(ok, 180, f"{self.name} to be {expected}")

    def log_tail(self) -> str:
        return (self.workdir / f"{self.name}-{self.starts}.log").read_text()[-3000:]

    def kill(self) -> None:
        kill_process(self.process)

    def stop(self) -> None:
        stop_process(self.process, grace_s=15)


def broker_env(broker: MosquittoBroker) -> dict[str, str]:
    assert broker.ca_file is not None
    return {
        "CAMPUS_HUB_BROKER__HOST": broker.host,
        "CAMPUS_HUB_BROKER__PORT": str(broker.port),
        "CAMPUS_HUB_BROKER__USERNAME": broker.hub_username,
        "CAMPUS_HUB_BROKER__PASSWORD": broker.hub_password,
        "CAMPUS_HUB_BROKER__TLS__CA_FILE": str(broker.ca_file),
    }


def federation_env(central: MosquittoBroker, region: str, workdir: Path) -> dict[str, str]:
    assert central.ca_file is not None
    prefix = "CAMPUS_HUB_FEDERATION__"
    return {
        f"{prefix}NODE_ID": region,
        f"{prefix}CENTRAL__HOST": central.host,
        f"{prefix}CENTRAL__PORT": str(central.port),
        f"{prefix}CENTRAL__PASSWORD": central.password_for(region),
        f"{prefix}CENTRAL__TLS__CA_FILE": str(central.ca_file),
        f"{prefix}OUTBOX_PATH": str(workdir / f"{region}-outbox.db"),
        f"{prefix}EVERY_S": "0.5",
        f"{prefix}FLEET_EVERY_S": "3",
        f"{prefix}KPI_EVERY_S": "4",
        f"{prefix}ROLLUP_HORIZON_S": str(4 * 3600),
    }


@contextmanager
def brokers(workdir: Path) -> Iterator[dict[str, MosquittoBroker]]:
    started: dict[str, MosquittoBroker] = {}
    try:
        for name, users in [("central", list(REGIONS)), *GATEWAYS.items()]:
            broker = MosquittoBroker(workdir=workdir / name, gateways=users, site_port=None)
            broker.start()
            started[name] = broker
        yield started
    finally:
        for broker in started.values():
            broker.stop()


def site(region: str, node: str) -> SiteIdentity:
    return SiteIdentity(
        city_id="city-1",
        city_name="Tier City",
        district_id=REGIONS[region],
        district_name=f"District {region[-1].upper()}",
        school_id=f"s-{node}",
        school_name=f"School {node}",
    )


def heartbeat(region: str, node: str) -> Health:
    now = datetime.now(UTC)
    return Health(
        site=site(region, node),
        agent_version="test",
        started_at=now,
        uptime_s=0,
        heartbeat_interval_s=30,
        outbox_depth=0,
        devices=[],
    )


def co2_window(node: str, index: int, base: datetime) -> Telemetry:
    start = base + timedelta(minutes=index)
    value = 400.0 + index
    return Telemetry(
        device=f"{node}-co2",
        profile=CO2,
        room="r101",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        points={"co2": PointStats(count=6, min=value, max=value, mean=value, last=value)},
    )


def co2_event(node: str, state: EventState) -> Event:
    return Event(
        rule="co2_high",
        device=f"{node}-co2",
        point="co2",
        state=state,
        severity=Severity.III,
        value=1600.0,
        threshold=1500.0,
        standard="GB/T 18883-2022",
        at=datetime.now(UTC),
    )


def send_event(gw: Gateway, state: EventState) -> None:
    gw.outbox.append_many([(MessageKind.EVENT, co2_event(gw.node, state))])
    gw.uplink.wake()


def send(gw: Gateway, region: str, base: datetime, indexes: range) -> None:
    gw.outbox.append_many(
        [(MessageKind.HEALTH, heartbeat(region, gw.node))]
        + [(MessageKind.TELEMETRY, co2_window(gw.node, i, base)) for i in indexes]
    )
    gw.uplink.wake()


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    try:
        with closing(sqlite3.connect(database)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def rollup_windows(central: Path, period: str) -> dict[str, int]:
    rows = query(
        central,
        f"SELECT school_id, sum(windows) FROM school_rollup WHERE period = '{period}' "
        "GROUP BY school_id",
    )
    return {str(school): int(str(n)) for school, n in rows}


def alert_transitions(regional: Path) -> int:
    """Alert transitions a regional hub recorded (a repeated raise is a change, not one)."""
    sql = "SELECT count(*) FROM alert_change WHERE from_state IS NULL OR from_state != to_state"
    rows = query(regional, sql)
    return int(str(rows[0][0])) if rows else 0


def central_transitions(central: Path, region: str) -> int:
    sql = f"SELECT count(*) FROM alert_transition WHERE regional_hub_id = '{region}'"
    rows = query(central, sql)
    return int(str(rows[0][0])) if rows else 0


def claims(central: Path, region: str) -> int:
    """Messages of ``region`` the central hub stored (its dedupe ledger: one row per message)."""
    return int(str(query(central, f"SELECT count(*) FROM seen_seq WHERE node = '{region}'")[0][0]))


def outbox_ledger(path: Path) -> tuple[int, dict[str, int]]:
    """(rows still queued, rows ever queued by kind) of a regional hub's outbox."""
    (depth,) = query(path, "SELECT count(*) FROM outbox")[0]
    appended = query(path, "SELECT name, value FROM counters WHERE name LIKE 'appended:%'")
    return int(str(depth)), {str(n).removeprefix("appended:"): int(str(v)) for n, v in appended}


async def gateways_for(
    stack: AsyncExitStack, regional: dict[str, MosquittoBroker], data: Path
) -> AsyncIterator[tuple[str, Gateway]]:
    for region, nodes in GATEWAYS.items():
        for node in nodes:
            yield region, await stack.enter_async_context(gateway(regional[region], node, data))


async def test_killing_the_central_hub_and_restarting_a_regional_hub_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    base = hour_ago_start()
    with brokers(tmp_path / "brokers") as running:
        central = HubServe(
            "central", tmp_path, {"CAMPUS_HUB_ROLE": "central", **broker_env(running["central"])}
        )
        regional = {
            region: HubServe(
                region,
                tmp_path,
                {
                    "CAMPUS_HUB_ROLE": "regional",
                    **broker_env(running[region]),
                    **federation_env(running["central"], region, tmp_path),
                },
            )
            for region in REGIONS
        }
        hubs = [central, *regional.values()]
        try:
            for hub in hubs:  # together: a regional hub waits for the central hub's session
                hub.start()
            await central.healthy(ingest="subscribed")
            for hub in regional.values():
                await hub.healthy(ingest="subscribed", federation="connected")
            async with AsyncExitStack() as stack:
                gws = [pair async for pair in gateways_for(stack, running, tmp_path)]
                for region, gw in gws:
                    send(gw, region, base, range(0, 15))

                central.kill()  # the city's hub is away for a while
                for region, gw in gws:
                    send(gw, region, base, range(15, 30))
                    send_event(gw, EventState.RAISED)  # an alert opens at the regional hub
                await asyncio.sleep(2)
                regional["region-a"].kill()  # and a district hub dies meanwhile
                for region, gw in gws:
                    send(gw, region, base, range(30, WINDOWS))
                    send_event(gw, EventState.CLEARED)
                await asyncio.sleep(1)
                regional["region-a"].start()
                await regional["region-a"].healthy(ingest="subscribed")
                await asyncio.sleep(2)
                central.start()
                await central.healthy(ingest="subscribed")

                schools = {f"s-{gw.node}" for _, gw in gws}
                complete = {school: WINDOWS for school in schools}

                def converged() -> bool:
                    drained = all(
                        outbox_ledger(tmp_path / f"{r}-outbox.db")[0] == 0 for r in REGIONS
                    )
                    forwarded = all(
                        central_transitions(central.database, r)
                        == alert_transitions(regional[r].database)
                        >= 2
                        for r in REGIONS
                    )
                    return (
                        drained
                        and forwarded
                        and all(
                            rollup_windows(central.database, period) == complete
                            for period in ("5m", "1h")
                        )
                    )

                await eventually(converged, 120, "every window in the central hub's rollups")
                for _, gw in gws:
                    assert gw.outbox.depth() == 0
            for hub in regional.values():
                hub.stop()  # no more reports: what they queued must all reach the central hub
            ledgers = {r: outbox_ledger(tmp_path / f"{r}-outbox.db") for r in REGIONS}
            delivered = {
                r: sum(appended.values()) - depth for r, (depth, appended) in ledgers.items()
            }

            def all_stored() -> bool:
                return all(claims(central.database, r) == n for r, n in delivered.items())

            await eventually(all_stored, 60, "the central hub to store what the regional hubs sent")
        finally:
            for hub in hubs:
                hub.stop()

        db = central.database
        for region, district in REGIONS.items():
            depth, appended = ledgers[region]
            (messages, repeats) = query(
                db, f"SELECT messages, repeats FROM regional_hub WHERE id = '{region}'"
            )[0]
            (snapshots,) = query(
                db, f"SELECT count(DISTINCT at) FROM kpi_snapshot WHERE district_id = '{district}'"
            )[0]
            # every message the regional hub queued arrived and was stored exactly once
            assert depth == 0, region
            assert claims(db, region) == messages == sum(appended.values()), (region, appended)
            assert repeats == 0
            assert snapshots == appended["kpis"] >= 2
            assert appended["rollup"] >= 2 and appended["fleet"] >= 2
            changes = central_transitions(db, region)
            assert changes == alert_transitions(regional[region].database) >= 2, region
        statuses = dict(query(db, "SELECT school_id, status FROM school_health"))
        assert set(statuses) == {f"s-{node}" for nodes in GATEWAYS.values() for node in nodes}
        districts = query(db, "SELECT district_id, regional_hub_id FROM district_report")
        assert sorted(districts) == sorted((d, r) for r, d in REGIONS.items())
        assert regional["region-a"].starts == 2 and central.starts == 2
