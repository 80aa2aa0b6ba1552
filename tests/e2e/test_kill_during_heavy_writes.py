"""SIGKILL of the agent while it writes and deletes outbox rows as fast as it can: no window lost,
none delivered twice.

Real parts, as in ``test_power_cut``: the hub's Mosquitto (TLS, password + ACL), a Mosquitto for
the school's LAN, the simulated school's pymodbus servers, and ``campus agent run`` as a separate
process. Each Modbus device of the school is configured five times over (same endpoint, its own
id), so every window period commits one ``append_many`` of some twenty windows, heartbeats list
every device, and the uplink deletes acknowledged batches at the same time. The agent is killed
with SIGKILL twice at random moments and restarted on the same data directory, then stopped with
SIGTERM once everything drained. A subscriber on the hub broker counts every window.

What is proven, exactly: every (epoch, seq) that arrived more than once arrived with the same
body; no (device, window) arrived under two seqs; the window periods that arrived are consecutive
except across a kill (each gap holds a kill and ends at or after the restart): the agent packs a
period's windows of every device into one row, so a lost row would leave a period out entirely;
the outbox file passes SQLite's integrity check after each kill; the outbox is empty after the
stop. Not proven: that every device had a window in every period. A device whose polls all stall
for a whole window (this machine under load) has no window to lose; that is acquisition, not
delivery.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from campus_forward.outbox import Outbox
from campus_protocol import Envelope, MessageKind, Telemetry, TelemetryBatch
from cloud_hub.broker import MosquittoBroker
from edge_agent.app import OUTBOX_FILE
from simulators.fleet import CityPlan, RunningFleet
from tests.e2e.test_power_cut import (  # noqa: F401 - fixtures
    fleet,
    hub_broker,
    plan,
    site_broker,
    spawned,
    start_agent,
    wait_for,
    window_index,
    write_agent_config,
)
from tests.edge.support import hub_listener
from tests.waiting import DEADLINE_S, PROCESS_START_S

COPIES = 5
KILLS = 2


def windows_of(envelope: Envelope) -> list[Telemetry]:
    body = envelope.body
    return list(body.windows) if isinstance(body, TelemetryBatch) else [body]  # type: ignore[list-item]


def multiply_devices(config: Path) -> list[str]:
    """Configure every Modbus device ``COPIES`` times; returns the device ids."""
    settings = yaml.safe_load(config.read_text())
    devices = []
    for device in settings["devices"]:
        copies = COPIES if "modbus" in device else 1
        for copy in range(copies):
            devices.append({**device, "id": f"{device['id']}-{copy}" if copy else device["id"]})
    settings["devices"] = devices
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    return [d["id"] for d in devices]


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(300)  # three agent processes on a loaded machine
async def test_windows_survive_sigkill_during_heavy_writes_exactly_once(
    tmp_path: Path,
    plan: CityPlan,  # noqa: F811
    hub_broker: MosquittoBroker,  # noqa: F811
    site_broker: MosquittoBroker,  # noqa: F811
    fleet: RunningFleet,  # noqa: F811
    spawned: list,  # noqa: F811
) -> None:
    data_dir = tmp_path / "agent"
    config = tmp_path / "agent.yaml"
    log = tmp_path / "agent.log"
    write_agent_config(config, plan, fleet, hub_broker, site_broker, data_dir)
    devices = multiply_devices(config)
    rng = random.Random(5)

    def agent_log() -> str:
        return "agent log (tail):\n" + "\n".join(log.read_text().splitlines()[-30:])

    async with hub_listener(hub_broker) as received:

        def latest_window() -> int:
            return max(
                (window_index(w.window_start) for e in list(received)
                 if e.kind is MessageKind.TELEMETRY for w in windows_of(e)),
                default=-1,
            )  # fmt: skip

        async def three_windows_from_this_run() -> None:
            before = latest_window()
            await wait_for(
                lambda: latest_window() > before, "a first window", PROCESS_START_S, agent_log
            )
            first = latest_window()
            await wait_for(lambda: latest_window() >= first + 2, "three windows", detail=agent_log)

        kills: list[tuple[int, int]] = []  # (window index at the kill, first index after restart)
        agent = start_agent(config, log, spawned)
        for _ in range(KILLS):
            await three_windows_from_this_run()
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            killed_at = window_index(time.time())
            agent.kill()
            agent.wait()
            assert integrity(data_dir / OUTBOX_FILE) == "ok"
            agent = start_agent(config, log, spawned)
            kills.append((killed_at, window_index(time.time())))
        await three_windows_from_this_run()
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(agent.wait, DEADLINE_S) == 0, agent_log()
        with Outbox(data_dir / OUTBOX_FILE) as outbox:
            assert outbox.depth() == 0, "every row was acknowledged by the hub broker"
            epoch, last_seq = outbox.epoch, outbox.last_seq()
        await wait_for(
            lambda: any(e.seq == last_seq for e in list(received)), "the offline state arrives"
        )

    # every repeat of a (epoch, seq) is the same message
    first: dict[int, Envelope] = {}
    for envelope in received:
        assert envelope.epoch == epoch
        if envelope.kind is MessageKind.STATE:
            continue
        seen = first.setdefault(envelope.seq, envelope)
        assert seen.body == envelope.body, envelope.seq

    # no window under two seqs; the periods (one row of every device's windows each) consecutive
    # except across a kill: a lost row would leave a period out for every device
    per_device: dict[str, list[int]] = {d: [] for d in devices}
    for envelope in first.values():
        if envelope.kind is MessageKind.TELEMETRY:
            for w in windows_of(envelope):
                per_device[w.device].append(window_index(w.window_start))
    for device, indexes in per_device.items():
        assert len(indexes) == len(set(indexes)), f"{device}: a window arrived under two seqs"
        assert len(indexes) > 2 * KILLS, device
    periods = sorted({i for indexes in per_device.values() for i in indexes})
    for before, after in itertools.pairwise(periods):
        if after - before > 1:
            assert any(before <= killed <= after and after >= back - 1 for killed, back in kills), (
                f"periods {before + 1}..{after - 1} missing outside a kill {kills}"
            )
