"""A power cut of the edge agent and restarts of the hub broker lose nothing the agent made durable.

Real parts only: the hub's Mosquitto (TLS, password + ACL) and a separate Mosquitto standing in for
the school's LAN broker, pymodbus servers and an MQTT controller serving fixed values, the hub
ingest worker on SQLite in this process, and the edge agent as a real ``campus agent run``
subprocess that is killed with SIGKILL (a power cut: no shutdown code runs) and started again on
the same data directory.

The run: agent 1 delivers windows; the hub broker restarts under it (stop + start on the same
ports); the hub broker goes away and agent 1 queues; agent 1 is power-cut in the middle of a
window; agent 2 starts on the same outbox while the hub broker is still away and queues too; the
hub broker comes back; agent 2 drains everything and is stopped with SIGTERM.

What is proven, exactly:

* Every outbox row left by the power cut, and every row agent 2 queued while the broker was
  away, reached the hub under its seq and kind; the outbox is empty after the clean stop.
* At-least-once plus dedupe is exactly-once in effect: each (node, seq) the hub settled was
  accepted once and every repeat was counted as a duplicate with an identical body; ``SeenSeq``
  holds exactly the seqs of the queued kinds that arrived; nothing was rejected; each telemetry
  window is stored once and came in one message.
* The seq counter never went back across the power cut (agent 2 only used seqs after the last
  one agent 1 committed) and a seq never named two different messages (state seqs, handed out by
  ``next_seq`` for the will and the online/offline state, are disjoint from row seqs).
* No queued message was lost: the window periods (each one row of every device's windows) are
  consecutive from the first one agent 1 closed to the last one it closed before the cut, and
  from agent 2's first to the one closed when it was told to stop, and every device has windows
  in both runs (a device whose polls all stall for a whole window on a loaded machine has none
  to lose: acquisition, not delivery); per agent run the heartbeats are consecutive (no step of
  two periods) from the first to the last before the cut / stop. The only missing windows are the
  ones during which no agent was running (the window open at the cut through agent 2's start).
  Telemetry and health are the only kinds the agent queues, so every seq in ``0..last_seq`` that
  the hub never saw is a ``next_seq`` seq: the will of a connection attempt (one per attempt,
  also for attempts refused while the broker was away) or a state publish cut short.

What is not proven: how many seqs went to wills. Failed connection attempts burn a seq each and
are visible only inside the agent, so those seqs are accounted for by elimination (above), not
counted one by one. The power cut is SIGKILL, which keeps the OS page cache; the fsync half of
``synchronous=FULL`` (a real loss of power) is not exercised here.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from campus_forward.outbox import Outbox
from campus_mqtt import Backoff
from campus_protocol import (
    Envelope,
    Health,
    MessageKind,
    State,
    Telemetry,
    TelemetryBatch,
    decode,
    parse_topic,
)
from cloud_hub.broker import MosquittoBroker
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import Device, Gateway, SeenSeq, TelemetryWindow
from cloud_hub.ingest.consumer import IngestConsumer
from cloud_hub.ingest.worker import IngestWorker, Outcome, OutcomeStatus
from cloud_hub.settings import BrokerSettings, TlsSettings
from edge_agent.app import OUTBOX_FILE
from simulators.fleet import CityPlan, RunningFleet, plan_city
from tests.e2e.support import POLL_S, SERVED, WINDOW_S, serve_school
from tests.waiting import DEADLINE_S, PROCESS_START_S

HEARTBEAT_S = 1.0
REPO = Path(__file__).resolve().parents[2]


class RecordingIngestWorker(IngestWorker):
    """The hub ingest worker, also keeping every message it settled (not the ones it kept to
    retry) with its outcome, in order."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.settled: list[tuple[Envelope, OutcomeStatus]] = []

    def process_batch(
        self, messages: Sequence[tuple[str, bytes]], *, now: datetime | None = None
    ) -> list[Outcome]:
        outcomes = super().process_batch(messages, now=now)
        for (topic, payload), outcome in zip(messages, outcomes, strict=True):
            if outcome.status is not OutcomeStatus.KEPT:
                self.settled.append((decode(payload, topic=parse_topic(topic)), outcome.status))
        return outcomes

    def envelopes(self, kind: MessageKind) -> list[Envelope]:
        return [envelope for envelope, _ in list(self.settled) if envelope.kind is kind]

    def windows(self) -> dict[str, set[int]]:
        """Window indexes per device, as received."""
        by_device: dict[str, set[int]] = {}
        for envelope in self.envelopes(MessageKind.TELEMETRY):
            for body in windows_of(envelope):
                by_device.setdefault(body.device, set()).add(window_index(body.window_start))
        return by_device


def windows_of(envelope: Envelope) -> list[Telemetry]:
    """The device windows a telemetry message carries (one, or a batch)."""
    body = envelope.body
    assert isinstance(body, Telemetry | TelemetryBatch)
    return body.windows if isinstance(body, TelemetryBatch) else [body]


def window_index(at: float | datetime) -> int:
    seconds = at.timestamp() if isinstance(at, datetime) else at
    return math.floor(seconds / WINDOW_S)


def outbox_rows(path: Path) -> dict[int, str]:
    """seq -> kind of every row in an agent's outbox, read only (the agent may be running)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return dict(db.execute("SELECT seq, kind FROM outbox"))
    except sqlite3.OperationalError:  # not created yet
        return {}


async def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = DEADLINE_S,
    detail: Callable[[], str] = str,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}\n{detail()}")
        await asyncio.sleep(0.05)


async def sleep_until_mid_window() -> None:
    """Sleep to the middle of a window, well after the agent enqueued the window just closed."""
    now = time.time()
    target = (window_index(now) + 0.5) * WINDOW_S
    if target < now + 0.05:
        target += WINDOW_S
    await asyncio.sleep(target - now)


@pytest.fixture
def plan() -> CityPlan:
    return plan_city(1, 1, seed=11)


@pytest.fixture
def hub_broker(tmp_path: Path, plan: CityPlan) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(
        tmp_path / "hub-broker", gateways=[plan.schools[0].gateway_id], tls=True, site_port=None
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The school's own LAN broker: it keeps running while the hub broker comes and goes."""
    broker = MosquittoBroker(tmp_path / "site-broker", tls=False)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def fleet(plan: CityPlan, site_broker: MosquittoBroker) -> AsyncIterator[RunningFleet]:
    running = await serve_school(plan, site_broker_port=site_broker.site_port or 0)
    yield running
    await running.stop()


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Agent processes started by the test; any still running at the end are killed."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def write_agent_config(
    path: Path,
    plan: CityPlan,
    fleet: RunningFleet,
    hub: MosquittoBroker,
    site: MosquittoBroker,
    data_dir: Path,
) -> None:
    school = plan.schools[0]
    devices = fleet.agent_device_configs(school.id)
    for device in devices:
        if "modbus" in device:
            device["modbus"]["poll_interval_s"] = POLL_S
    config = {
        "gateway": {"id": school.gateway_id, "site": plan.site_identity(school.id)},
        "hub": {
            "host": hub.host,
            "port": hub.port,
            "password": hub.password_for(school.gateway_id),
            "tls": {"ca_file": str(hub.ca_file)},
        },
        "site_broker": {"host": site.host, "port": site.site_port},
        "data_dir": str(data_dir),
        "window_s": WINDOW_S,
        "heartbeat_s": HEARTBEAT_S,
        "devices": devices,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def start_agent(
    config: Path, log: Path, spawned: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "campus_cli.main", "agent", "run", "--config", str(config)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    spawned.append(process)
    return process


def stored_windows(
    sessions: sessionmaker[Session], node: str
) -> dict[tuple[str, int], dict[str, TelemetryWindow]]:
    """(device, window index) -> point -> stored row."""
    stored: dict[tuple[str, int], dict[str, TelemetryWindow]] = {}
    with sessions() as session:
        query = (
            select(Device.key, TelemetryWindow)
            .join(Device, Device.id == TelemetryWindow.device_id)
            .where(Device.gateway_id == node)
        )
        for key, row in session.execute(query).all():
            start = row.window_start
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            points = stored.setdefault((key, window_index(start)), {})
            assert row.point not in points
            points[row.point] = row
    return stored


@pytest.mark.timeout(300)  # two agent processes and three broker restarts on a loaded machine
async def test_readings_made_durable_survive_an_agent_power_cut_and_hub_broker_restarts(
    tmp_path: Path,
    plan: CityPlan,
    hub_broker: MosquittoBroker,
    site_broker: MosquittoBroker,
    fleet: RunningFleet,
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    school = plan.schools[0]
    node = school.gateway_id
    profile_of = {d["id"]: d["profile"] for d in fleet.agent_device_configs(school.id)}
    devices = set(profile_of)
    data_dir = tmp_path / "agent"
    outbox_path = data_dir / OUTBOX_FILE
    config = tmp_path / "agent.yaml"
    log = tmp_path / "agent.log"
    write_agent_config(config, plan, fleet, hub_broker, site_broker, data_dir)

    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    create_schema(engine)
    sessions = make_sessionmaker(engine)
    worker = RecordingIngestWorker(sessions)
    consumer = IngestConsumer(
        worker,
        BrokerSettings(
            host=hub_broker.host,
            port=hub_broker.port,
            password=hub_broker.hub_password,
            tls=TlsSettings(ca_file=hub_broker.ca_file),
        ),
        backoff=Backoff(0.1, 1.0),  # the hub is not under test: it reconnects at once
    )
    ingest = asyncio.create_task(consumer.run())

    def agent_log() -> str:
        return "agent log (tail):\n" + "\n".join(log.read_text().splitlines()[-30:])

    def queues_a_window_and_a_heartbeat(rows: dict[int, str]) -> bool:
        kinds = list(rows.values())
        return kinds.count("telemetry") >= len(devices) and "health" in kinds

    def every_device_has_a_window_from(first: int) -> Callable[[], bool]:
        def check() -> bool:
            windows = worker.windows()
            return all(any(i >= first for i in windows.get(d, ())) for d in devices)

        return check

    try:
        await asyncio.wait_for(consumer.connected.wait(), DEADLINE_S)

        # agent 1 delivers windows
        agent_1 = start_agent(config, log, spawned)
        first_index = window_index(time.time())
        await wait_for(
            every_device_has_a_window_from(first_index + 1),
            "agent 1 delivers",
            PROCESS_START_S,
            agent_log,
        )

        # the hub broker restarts under the running agent; delivery resumes
        restarted_at = time.time()
        await asyncio.to_thread(hub_broker.restart)
        await wait_for(
            every_device_has_a_window_from(window_index(restarted_at) + 1),
            "delivery resumes after the broker restart",
            DEADLINE_S,
            agent_log,
        )

        # the hub broker goes away: agent 1 queues, then loses power mid-window
        await asyncio.to_thread(hub_broker.stop)
        await wait_for(
            lambda: queues_a_window_and_a_heartbeat(outbox_rows(outbox_path)),
            "agent 1 queues a window of every device and a heartbeat",
        )
        await sleep_until_mid_window()
        killed_at = time.time()
        agent_1.kill()
        agent_1.wait()
        kill_index = window_index(killed_at)
        with Outbox(outbox_path) as outbox:
            left_by_cut = {row.seq: row.kind.value for row in outbox.pending(100_000)}
            last_seq_at_cut = outbox.last_seq()
        assert queues_a_window_and_a_heartbeat(left_by_cut)

        # agent 2 starts on the same outbox while the broker is still away, and queues too
        agent_2 = start_agent(config, log, spawned)

        def queued_by_agent_2() -> dict[int, str]:
            return {s: k for s, k in outbox_rows(outbox_path).items() if s > last_seq_at_cut}

        await wait_for(
            lambda: queues_a_window_and_a_heartbeat(queued_by_agent_2()),
            "agent 2 queues a window of every device and a heartbeat, under new seqs",
            PROCESS_START_S,
            agent_log,
        )
        queued_at = time.time()
        queued = queued_by_agent_2()
        assert left_by_cut.items() <= outbox_rows(outbox_path).items(), "nothing sent yet"

        # the broker returns: everything queued drains, live windows flow again
        await asyncio.to_thread(hub_broker.start)
        back_at = time.time()
        must_arrive = left_by_cut | queued

        def settled_seqs() -> set[int]:
            return {e.seq for e, _ in list(worker.settled) if e.kind is not MessageKind.STATE}

        await wait_for(
            lambda: must_arrive.keys() <= settled_seqs(),
            "the backlog reaches the hub",
            2 * DEADLINE_S,  # the agent's uplink backs off up to 30 s after the long outage
        )
        await wait_for(
            every_device_has_a_window_from(window_index(back_at) + 1),
            "live windows after the broker returns",
            DEADLINE_S,
            agent_log,
        )

        # a clean stop
        stopping_at = time.time()
        agent_2.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(agent_2.wait, DEADLINE_S) == 0, agent_log()
        with Outbox(outbox_path) as outbox:
            assert outbox.depth() == 0, "every row was acknowledged by the hub broker"
            last_seq = outbox.last_seq()

        def final_state_arrived() -> bool:
            return any(e.seq == last_seq for e in worker.envelopes(MessageKind.STATE))

        await wait_for(final_state_arrived, "the offline state, the last seq, reaches the hub")
    finally:
        ingest.cancel()
        await asyncio.gather(ingest, return_exceptions=True)

    settled = list(worker.settled)
    assert worker.rejected == 0, worker.rejections

    # each (node, seq) accepted once, every repeat a counted duplicate of the same message
    assert {e.node for e, _ in settled} == {node}
    rows: dict[int, list[tuple[Envelope, OutcomeStatus]]] = {}
    states: dict[int, list[Envelope]] = {}
    for envelope, status in settled:
        if envelope.kind is MessageKind.STATE:
            states.setdefault(envelope.seq, []).append(envelope)
        else:
            rows.setdefault(envelope.seq, []).append((envelope, status))
    for seq, copies in rows.items():
        assert [s for _, s in copies] == [OutcomeStatus.ACCEPTED] + [OutcomeStatus.DUPLICATE] * (
            len(copies) - 1
        ), seq
        assert len({(e.kind, e.body.model_dump_json()) for e, _ in copies}) == 1, seq
    assert worker.duplicates == sum(len(copies) - 1 for copies in rows.values())
    for seq, repeats in states.items():  # retained state is delivered again on resubscribe
        assert len({e.body.model_dump_json() for e in repeats}) == 1, seq
    assert not rows.keys() & states.keys(), "a seq named a row and a state"
    assert max(rows.keys() | states.keys()) == last_seq
    with sessions() as session:
        seen = set(session.scalars(select(SeenSeq.seq).where(SeenSeq.node == node)))
        gateway = session.get(Gateway, node)
        assert gateway is not None and gateway.online is False
    assert seen == rows.keys()
    assert states[last_seq][0].body == State(online=False)

    # what the power cut left and what agent 2 queued arrived, as the same kinds
    kinds = {seq: copies[0][0].kind.value for seq, copies in rows.items()}
    assert {seq: kinds.get(seq) for seq in left_by_cut} == left_by_cut
    assert {seq: kinds.get(seq) for seq in queued} == queued

    # the seq counter never went back: agent 2 used only seqs after agent 1's last
    healths = [e for e, _ in settled if isinstance(e.body, Health)]
    runs: dict[datetime, list[tuple[float, int]]] = {}
    for envelope in healths:
        assert isinstance(envelope.body, Health)
        runs.setdefault(envelope.body.started_at, []).append((envelope.body.uptime_s, envelope.seq))
    assert len(runs) == 2, sorted(runs)
    started_1, started_2 = sorted(runs)
    assert all(seq <= last_seq_at_cut for _, seq in runs[started_1])
    assert all(seq > last_seq_at_cut for _, seq in runs[started_2])
    telemetry = [e for e, _ in settled if e.kind is MessageKind.TELEMETRY]
    for envelope in telemetry:
        for body in windows_of(envelope):
            before_cut = window_index(body.window_start) < kill_index
            assert (envelope.seq <= last_seq_at_cut) is before_cut, envelope.seq

    # no heartbeat lost: consecutive per run, up to the last one before the cut / the stop
    for started, end in ((started_1, killed_at), (started_2, stopping_at)):
        uptimes = sorted({uptime for uptime, _ in runs[started]})
        assert uptimes[0] < HEARTBEAT_S, uptimes
        steps = [b - a for a, b in itertools.pairwise(uptimes)]
        assert max(steps) < 1.5 * HEARTBEAT_S, uptimes
        assert uptimes[-1] >= end - started.timestamp() - 1.25 * HEARTBEAT_S, uptimes

    # no window lost: consecutive per device, the only gap is the time no agent was running
    windows = worker.windows()
    assert windows.keys() == devices
    stored = [e for e, status in settled if e.kind is MessageKind.TELEMETRY
              and status is OutcomeStatus.ACCEPTED]  # fmt: skip
    assert len({e.seq for e in stored}) == len(stored), "each message stored once"
    carried = sum(len(windows_of(e)) for e in telemetry)
    assert carried == sum(len(w) for w in windows.values()), "each window in one message"
    # the agent queues the windows of every device of a period in one row: a lost row leaves the
    # period out for every device, while a device whose polls all stalled for a whole window (a
    # loaded machine) has no window of that period to lose; that is acquisition, not delivery
    periods = {i for indexes in windows.values() for i in indexes}
    before = sorted(i for i in periods if i < kill_index)
    after = sorted(i for i in periods if i >= kill_index)
    assert before == list(range(before[0], kill_index)), (before, kill_index)
    assert after == list(range(after[0], after[-1] + 1)), after
    # agent 2 had closed its first window by the time its queue was seen
    assert after[0] < window_index(queued_at), after[0]
    assert after[-1] >= window_index(stopping_at) - 1, after[-1]
    for device, indexes in windows.items():
        assert indexes & set(before) and indexes & set(after), device

    # the hub stored each window once, with exactly the served values
    stored = stored_windows(sessions, node)
    assert stored.keys() == {(d, i) for d, indexes in windows.items() for i in indexes}
    for (device, index), points in stored.items():
        served = SERVED[profile_of[device]]
        assert served.keys() <= points.keys(), (device, index)
        for point, value in served.items():
            row = points[point]
            assert row.min == row.max == pytest.approx(value, rel=1e-6), (device, point)
            assert row.mean == pytest.approx(value, rel=1e-6), (device, point)
    engine.dispose()
