"""A long outage exhausts the outbox's disk budget; then the uplink returns.

Real parts: the outbox on disk, the uplink, Mosquitto with TLS, passwords and the gateway ACL, and
a hub-side subscriber counting what reached the broker. The test stands in for acquisition: it
appends the windows (and events, and heartbeats) an agent would, so it knows exactly what was
acquired, while the uplink is down. Every test window holds two readings with ``min`` = its index
and ``max`` = index + 1, so a merged window tells which windows it stands for.

What is proven, exactly: every acquired window reached the hub alone, reached it inside exactly
one merged window (whose count, min and max are those of the windows it covers), or was counted
as dropped, and the three add up to what was acquired; no window arrived twice; every event
arrived, all of them before the first telemetry of the backlog; newest telemetry appended while
the backlog drains arrives before the backlog has finished.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from campus_forward.outbox import Outbox
from campus_forward.uplink import HubUplink
from campus_protocol.envelope import Envelope
from campus_protocol.messages import (
    Event,
    Health,
    MessageKind,
    PointStats,
    SiteIdentity,
    Telemetry,
    TelemetryBatch,
)
from cloud_hub.broker import MosquittoBroker
from tests.edge.support import hub_listener, wait_until
from tests.forward.test_outbox import event
from tests.forward.test_uplink import hub_settings, stop

WINDOW_S = 10
DEVICES = ("meter-1", "meter-2", "meter-3")
OUTAGE_WINDOWS = 400  # per device
LIVE_WINDOWS = 20  # per device, appended while the backlog drains
BUDGET = 60_000
MERGE_WINDOW_S = 100  # ten windows per merged window


def window(device: str, index: int) -> Telemetry:
    return Telemetry(
        device=device,
        profile="eastron_sdm120",
        room="lab-3",
        window_start=datetime.fromtimestamp(index * WINDOW_S, UTC),
        window_end=datetime.fromtimestamp((index + 1) * WINDOW_S, UTC),
        points={"power": PointStats(count=2, min=index, max=index + 1, mean=index, last=index)},
    )


def heartbeat() -> Health:
    return Health(
        site=SiteIdentity(city_id="c1", district_id="d1", school_id="s1"),
        agent_version="test",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        uptime_s=1,
        heartbeat_interval_s=10,
        outbox_depth=0,
        devices=[],
    )


def tick(index: int) -> list[tuple[MessageKind, Telemetry | Event | Health]]:
    """What one window period adds to the outbox: a window per device, a heartbeat, and every
    50 periods an event."""
    messages: list[tuple[MessageKind, Telemetry | Event | Health]] = [
        (MessageKind.TELEMETRY, window(device, index)) for device in DEVICES
    ]
    messages.append((MessageKind.HEALTH, heartbeat()))
    if index % 50 == 0:
        messages.append((MessageKind.EVENT, event(index)))
    return messages


def telemetry_windows(envelope: Envelope) -> list[Telemetry]:
    body = envelope.body
    return list(body.windows) if isinstance(body, TelemetryBatch) else [body]  # type: ignore[list-item]


async def test_a_budget_exhausted_in_a_long_outage_accounts_for_every_window_and_loses_no_event(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", budget_bytes=BUDGET, merge_window_s=MERGE_WINDOW_S)
    for index in range(OUTAGE_WINDOWS):  # the outage: nothing drains
        outbox.append_many(tick(index))
    during_outage = outbox.budget_report()
    events = [row.seq for row in outbox.pending(limit=100_000) if row.kind is MessageKind.EVENT]

    assert during_outage.bytes <= BUDGET
    assert during_outage.merged_windows > 0 and during_outage.discarded_windows > 0
    assert len(events) == OUTAGE_WINDOWS // 50

    uplink = HubUplink("gw-1", hub_settings(mosquitto_broker), outbox, max_in_flight=16)
    async with hub_listener(mosquitto_broker) as received:
        task = asyncio.create_task(uplink.run())
        await wait_until(lambda: uplink.connected)
        for index in range(OUTAGE_WINDOWS, OUTAGE_WINDOWS + LIVE_WINDOWS):  # live data goes on
            outbox.append_many(tick(index))
            uplink.wake()
            await asyncio.sleep(0.01)
        await wait_until(lambda: outbox.depth() == 0, timeout_s=30)
        await stop(uplink, task)
        await wait_until(lambda: received[-1].kind is MessageKind.STATE)

    queued = [e for e in received if e.kind is not MessageKind.STATE]
    by_seq = {e.seq: e for e in queued}
    arrivals = list(by_seq.values())  # first arrival of each seq, in arrival order
    report = outbox.budget_report()
    outbox.close()

    # no event lost, all before the backlog's telemetry
    kinds = [e.kind for e in arrivals]
    first_telemetry = kinds.index(MessageKind.TELEMETRY)
    assert set(events) <= {e.seq for e in arrivals[:first_telemetry]}
    assert (
        sum(isinstance(e.body, Event) for e in arrivals)
        == (OUTAGE_WINDOWS + LIVE_WINDOWS + 49) // 50
    )

    # every acquired window: alone, inside one merged window, or counted as dropped
    seen: dict[tuple[str, int], int] = {}
    merged_sources = 0
    for envelope in (e for e in arrivals if e.kind is MessageKind.TELEMETRY):
        for w in telemetry_windows(envelope):
            first = round(w.window_start.timestamp() / WINDOW_S)
            last = round(w.window_end.timestamp() / WINDOW_S) - 1
            stats = w.points["power"]
            assert (stats.count, stats.min, stats.max) == (2 * (last - first + 1), first, last + 1)
            for index in range(first, last + 1):
                seen[(w.device, index)] = seen.get((w.device, index), 0) + 1
            if last > first:
                merged_sources += last - first + 1
    acquired = len(DEVICES) * (OUTAGE_WINDOWS + LIVE_WINDOWS)
    assert max(seen.values()) == 1, "no window reached the hub twice"
    assert len(seen) + report.discarded_windows == acquired
    assert report.merged_windows >= merged_sources > 0
    assert all((d, i) in seen for d in DEVICES for i in range(OUTAGE_WINDOWS, acquired // 3))
    assert report.discarded == {
        "health:disk_budget": report.discarded["health:disk_budget"],
        "telemetry:disk_budget": report.discarded["telemetry:disk_budget"],
    }

    # live windows were not held behind the whole backlog
    last_backlog = max(
        i for i, e in enumerate(arrivals) if e.kind is MessageKind.TELEMETRY and e.seq < events[-1]
    )
    first_live = min(
        i
        for i, e in enumerate(arrivals)
        if e.kind is MessageKind.TELEMETRY
        and any(
            w.window_start.timestamp() >= OUTAGE_WINDOWS * WINDOW_S for w in telemetry_windows(e)
        )
    )
    assert first_live < last_backlog, "live data shares the uplink with the backlog"
