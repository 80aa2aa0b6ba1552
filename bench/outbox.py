"""Outbox and uplink after an outage: drain time against the link's limit, disk per point, days in
1 GB.

A school of ``devices`` devices (4 points each, 10 s windows, a heartbeat every 10 s listing every
device) is offline for ``outage_s``: the outbox is filled the way the agent fills it (one
``append_many`` per window period). Then ``HubUplink`` drains it to a real Mosquitto (TLS,
passwords, ACL; the hub subscribed at QoS 1 in this process) and the time until the outbox is
empty is measured. The link's limit, in the same run on the same broker: a plain aiomqtt client
publishing the same payloads at QoS 1 with the same number in flight and nothing else (no
outbox, no envelopes built, no deletes). Both shapes are measured: one window per message (the
agent before ``pack_windows``) and the agent's own packing (``pack_windows``: every device's
window of a period in one ``TelemetryBatch`` message of at most 192 KiB).

Disk: the SQLite file (WAL checkpointed) divided by the points queued; merged: the same for
windows merged to 15 minutes. Days in 1 GB follow from those per-point figures.

    .venv/bin/python bench/outbox.py [devices] [outage_s]
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from campus_config import HubBrokerSettings, TlsSettings
from campus_forward.outbox import Outbox
from campus_forward.packing import pack_windows
from campus_forward.uplink import HubUplink
from campus_protocol import (
    DeviceHealth,
    DeviceStatus,
    Envelope,
    Health,
    MessageKind,
    PointStats,
    SiteIdentity,
    Telemetry,
    TelemetryBatch,
    encode,
    hub_subscription,
    parse_body_json,
    uplink_topic,
)
from campus_protocol.messages import Body
from cloud_hub.broker import MosquittoBroker
from cloud_hub.ingest.consumer import publish_hub_session

NODE = "gw-bench"
WINDOW_S = 10
HEARTBEAT_S = 10
POINTS = {"power": ("W", 1234.5), "voltage": ("V", 229.8), "current": ("A", 5.37),
          "energy": ("kWh", 98765.43)}  # fmt: skip
IN_FLIGHT = 64
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
GIB = 1 << 30


def window(device: int, index: int, span_s: int = WINDOW_S) -> Telemetry:
    start = T0 + timedelta(seconds=index * span_s)
    return Telemetry(
        device=f"dev-{device:03d}", profile="eastron_sdm120", room=f"room-{device // 4:03d}",
        window_start=start, window_end=start + timedelta(seconds=span_s),
        points={
            name: PointStats(count=10, min=v - 1, max=v + 1, mean=v, last=v, unit=unit)
            for name, (unit, v) in POINTS.items()
        },
    )  # fmt: skip


def heartbeat(devices: int) -> Health:
    return Health(
        site=SiteIdentity(city_id="c1", district_id="d1", school_id="s1"),
        agent_version="bench", started_at=T0, uptime_s=3600, heartbeat_interval_s=HEARTBEAT_S,
        outbox_depth=0,
        devices=[
            DeviceHealth(device=f"dev-{d:03d}", profile="eastron_sdm120", room=f"room-{d // 4:03d}",
                         protocol="modbus", status=DeviceStatus.ONLINE, last_ok_at=T0)
            for d in range(devices)
        ],
    )  # fmt: skip


def fill(path: Path, devices: int, periods: int, *, batched: bool) -> tuple[Outbox, float, float]:
    """The outage: one append_many per period; returns the outbox, wall s and CPU s."""
    outbox = Outbox(path, budget_bytes=64 * GIB)
    beat = heartbeat(devices)
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(periods):
        windows = [window(d, index) for d in range(devices)]
        bodies: list[Body] = list(pack_windows(windows)) if batched else list(windows)
        telemetry: list[tuple[MessageKind, Body]] = [(MessageKind.TELEMETRY, b) for b in bodies]
        if index % (HEARTBEAT_S // WINDOW_S) == 0:
            telemetry.append((MessageKind.HEALTH, beat))
        outbox.append_many(telemetry)
    return outbox, time.perf_counter() - wall, time.process_time() - cpu


def disk_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def hub_settings(broker: MosquittoBroker) -> HubBrokerSettings:
    assert broker.ca_file is not None
    return HubBrokerSettings(
        host=broker.host, port=broker.port, password=broker.password_for(NODE),
        tls=TlsSettings(ca_file=broker.ca_file),
    )  # fmt: skip


def client(broker: MosquittoBroker, username: str, password: str, ident: str) -> aiomqtt.Client:
    assert broker.ca_file is not None
    return aiomqtt.Client(
        broker.host, broker.port, username=username, password=password, identifier=ident,
        tls_params=aiomqtt.TLSParameters(ca_certs=str(broker.ca_file)),
        max_inflight_messages=IN_FLIGHT, max_queued_outgoing_messages=0,
    )  # fmt: skip


async def count_at_hub(broker: MosquittoBroker, received: list[int], ready: asyncio.Event) -> None:
    async with client(broker, broker.hub_username, broker.hub_password, "bench-hub") as hub:
        await hub.subscribe(hub_subscription(), qos=1)
        await publish_hub_session(hub, "regional")  # as the hub does: the uplink waits for it
        ready.set()
        async for _ in hub.messages:
            received[0] += 1


async def drain(broker: MosquittoBroker, outbox: Outbox, in_flight: int) -> tuple[float, float]:
    """Wall and CPU seconds until the outbox is empty."""
    uplink = HubUplink(NODE, hub_settings(broker), outbox, max_in_flight=in_flight)
    wall, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(uplink.run())
    while outbox.depth():  # noqa: ASYNC110 - the outbox has no event to wait on
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    uplink.close(1.0)
    await task
    return elapsed


async def plain_publisher(broker: MosquittoBroker, payloads: list[tuple[str, bytes]]) -> float:
    """The link's limit: the same payloads at QoS 1, ``IN_FLIGHT`` at a time; wall seconds."""
    async with client(broker, NODE, broker.password_for(NODE), NODE) as link:
        link.pending_calls_threshold = IN_FLIGHT
        started = time.perf_counter()
        for i in range(0, len(payloads), IN_FLIGHT):
            await asyncio.gather(
                *(link.publish(t, p, qos=1) for t, p in payloads[i : i + IN_FLIGHT])
            )
        return time.perf_counter() - started


def encoded(outbox: Outbox) -> list[tuple[str, bytes]]:
    out = []
    for row in outbox.pending(limit=10**7):
        body = parse_body_json(row.kind, row.body)
        envelope = Envelope.wrap(node=NODE, epoch=outbox.epoch, seq=row.seq, body=body)
        out.append((uplink_topic(NODE, row.kind), encode(envelope)))
    return out


async def drain_run(
    broker: MosquittoBroker, work: Path, devices: int, periods: int, *, batched: bool
) -> dict[str, float]:
    path = work / f"drain-{'batch' if batched else 'window'}.sqlite3"
    outbox, fill_s, fill_cpu = fill(path, devices, periods, batched=batched)
    outbox.close()
    file_mb = disk_bytes(path) / 1e6
    opened = time.perf_counter()
    outbox = Outbox(path, budget_bytes=64 * GIB)  # quick_check reads the whole file
    open_s = time.perf_counter() - opened
    rows = outbox.depth()
    payloads = encoded(outbox)
    size = sum(len(p) for _, p in payloads)
    received = [0]
    ready = asyncio.Event()
    hub = asyncio.create_task(count_at_hub(broker, received, ready))
    await ready.wait()
    # the link's limit before and after the drain (the faster counts): the order favours neither
    link_before = await plain_publisher(broker, payloads)
    drain_s, drain_cpu = await drain(broker, outbox, IN_FLIGHT)
    link_s = min(link_before, await plain_publisher(broker, payloads))
    # one message in flight at a time (the uplink before batching), on a sample of the backlog
    sample, _, _ = fill(work / f"serial-{batched}.sqlite3", devices, max(1, periods // 36),
                        batched=batched)  # fmt: skip
    sample_rows = sample.depth()
    serial_s, _ = await drain(broker, sample, 1)
    sample.close()
    while received[0] < 3 * rows + sample_rows:  # noqa: ASYNC110 - the hub has seen every run
        await asyncio.sleep(0.05)
    hub.cancel()
    outbox.close()
    return {"rows": rows, "mb": size / 1e6, "file_mb": file_mb, "open_s": open_s,
            "fill_s": fill_s, "fill_cpu": fill_cpu,
            "drain_s": drain_s, "drain_cpu": drain_cpu, "link_s": link_s,
            "serial_rate": sample_rows / serial_s}  # fmt: skip


def per_point(work: Path, devices: int, periods: int) -> tuple[float, float, float]:
    """Bytes on disk per point: raw windows (with heartbeats), raw windows alone, merged."""
    raw, _, _ = fill(work / "raw.sqlite3", devices, periods, batched=False)
    raw.close()
    points = devices * periods * len(POINTS)
    with_heartbeats = disk_bytes(work / "raw.sqlite3") / points
    alone = Outbox(work / "alone.sqlite3", budget_bytes=64 * GIB)
    for index in range(periods):
        alone.append_many([(MessageKind.TELEMETRY, window(d, index)) for d in range(devices)])
    alone.close()
    windows_alone = disk_bytes(work / "alone.sqlite3") / points
    # a day of 15-minute windows as merging leaves them (larger counts: the same size on disk)
    merged = [window(d, i, span_s=900) for d in range(devices) for i in range(96)]
    store = Outbox(work / "merged.sqlite3", budget_bytes=64 * GIB)
    store.append_many(
        [(MessageKind.TELEMETRY, TelemetryBatch(windows=merged[i : i + 200]))
         for i in range(0, len(merged), 200)]
    )  # fmt: skip
    store.close()
    merged_per_point = disk_bytes(work / "merged.sqlite3") / (len(merged) * len(POINTS))
    return with_heartbeats, windows_alone, merged_per_point


def main(devices: int, outage_s: int) -> None:
    periods = outage_s // WINDOW_S
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        work = Path(tmp)
        broker = MosquittoBroker(work / "broker", gateways=[NODE], tls=True, site_port=None)
        broker.start()
        try:
            for batched in (True, False):
                # one window per message is measured on the first 5 minutes and scaled up: the
                # broker (which saves its store after every change) takes ~100 messages/s
                measured = periods if batched else min(periods, 300 // WINDOW_S)
                r = asyncio.run(drain_run(broker, work, devices, measured, batched=batched))
                shape = "pack_windows per period" if batched else "one window per message"
                if measured < periods:
                    scale = periods / measured
                    shape += f" (first {measured * WINDOW_S} s measured, times {scale:g})"
                    for key in ("rows", "mb", "fill_s", "fill_cpu", "drain_s", "drain_cpu",
                                "link_s", "file_mb", "open_s"):  # fmt: skip
                        r[key] *= scale
                print(f"{devices} devices, {outage_s} s outage, {shape}: {r['rows']:.0f} messages, "
                      f"{r['mb']:.1f} MB; fill {r['fill_s']:.1f} s ({r['fill_cpu']:.1f} CPU s); "
                      f"drain {r['drain_s']:.1f} s ({r['drain_cpu']:.1f} CPU s, "
                      f"{r['rows'] / r['drain_s']:.0f} msg/s); link limit {r['link_s']:.1f} s "
                      f"({r['rows'] / r['link_s']:.0f} msg/s); drain/limit "
                      f"{r['drain_s'] / r['link_s']:.2f}; one in flight (sample) "
                      f"{r['serial_rate']:.0f} msg/s; reopening the {r['file_mb']:.0f} MB "
                      f"file (quick_check) {r['open_s']:.2f} s")  # fmt: skip
        finally:
            broker.stop()
        with_beats, alone, merged = per_point(work, devices, min(periods, 60))
    day_points = devices * len(POINTS) * 86400 / WINDOW_S
    print(f"disk per point: {with_beats:.0f} B with heartbeats, {alone:.0f} B windows alone, "
          f"{merged:.0f} B per merged (15 min) point")  # fmt: skip
    print(f"days of this school in 1 GiB: {GIB / (day_points * with_beats):.2f} raw with "
          f"heartbeats, {GIB / (day_points * alone):.2f} raw windows alone, "
          f"{GIB / (day_points * WINDOW_S / 900 * merged):.0f} merged to 15 min")  # fmt: skip
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200,
         int(sys.argv[2]) if len(sys.argv) > 2 else 3600)  # fmt: skip
