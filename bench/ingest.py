"""Hub ingest throughput in points/s on SQLite and PostgreSQL, one and two workers, each beside the
database's plain batched-insert limit measured in the same run.

Workers run ``IngestWorker.process_batch`` (decode, dedupe claim, windows, latest values, device
timestamps, rule evaluation) over batches of ``--batch`` messages, as the broker consumer does.
Two workers are two processes, each taking every other batch (as a shared subscription splits
them), writing to one database. The limit is the same window rows written with plain DB-API: one
``executemany`` per batch and one commit per batch, no decoding, no dedupe, no latest values; on
PostgreSQL also one binary ``COPY`` per batch (what the workers use there). Every figure is the
best of ``--repeat`` runs, the limits' runs interleaved with the workers' (the machine is shared:
a quiet moment favours neither side). CPU-µs/point counts the client processes and, on
PostgreSQL, their server backends (read from /proc); "one core's worth" is 10^6 / that: the rate
one worker reaches on a machine where nothing else runs and client and server take turns.

    .venv/bin/python bench/ingest.py [--messages 600] [--windows 20] [--batch 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from campus_protocol import (
    Envelope,
    PointStats,
    Telemetry,
    TelemetryBatch,
    encode,
    uplink_topic,
)
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker

POINTS = {"co2": 812.0, "temperature": 23.4, "humidity": 41.5, "pm25": 12.0}
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
Message = tuple[str, bytes]
Rate = tuple[float, float]  # points/s (wall), CPU-µs per point (client + PostgreSQL backend)
LimitRow = tuple[int, str, str, str, float]


@dataclass(frozen=True)
class Shape:
    messages: int
    windows: int  # device windows per telemetry message
    batch: int  # messages per process_batch call (one transaction)

    @property
    def points(self) -> int:
        return self.messages * self.windows * len(POINTS)


def window(device: int, start: datetime) -> Telemetry:
    return Telemetry(
        device=f"iaq-{device}", profile="sensecap_s_co2_03", room=f"r{device}",
        window_start=start, window_end=start + timedelta(seconds=10),
        points={p: PointStats(count=10, min=v, max=v, mean=v, last=v) for p, v in POINTS.items()},
    )  # fmt: skip


def messages(shape: Shape, *, epoch: str = "bench") -> list[Message]:
    """``shape.messages`` telemetry messages from one gateway, each ``shape.windows`` devices."""
    out = []
    for seq in range(1, shape.messages + 1):
        start = T0 + timedelta(seconds=10 * seq)
        windows = [window(device, start) for device in range(shape.windows)]
        body = windows[0] if shape.windows == 1 else TelemetryBatch(windows=windows)
        envelope = Envelope.wrap(node="gw-bench", epoch=epoch, seq=seq, body=body, sent_at=start)
        out.append((uplink_topic("gw-bench", envelope.kind), encode(envelope)))
    return out


def batches(items: list[Message], size: int) -> list[list[Message]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def server_cpu(backend: int | None) -> float:
    """CPU seconds used so far by the PostgreSQL backend process ``backend`` (0 for SQLite: its
    work is done in the client process and counted there)."""
    if backend is None:
        return 0.0
    fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _run_worker(url: str, work: list[list[Message]]) -> tuple[int, float, float, float]:
    """Store ``work`` batch by batch; returns (accepted, CPU seconds of this process and of its
    database backend, start and end of its loop on the system-wide monotonic clock): process
    start-up is not counted."""
    engine = make_engine(url)
    worker = IngestWorker(make_sessionmaker(engine))
    backend = None  # one batch at a time: the pool keeps using this one connection
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    cpu, started = time.process_time() + server_cpu(backend), time.perf_counter()
    for batch in work:
        worker.process_batch(batch)
    cpu, ended = time.process_time() + server_cpu(backend) - cpu, time.perf_counter()
    engine.dispose()
    assert worker.rejected == 0 and worker.replayed_batches == 0, worker.rejections
    return worker.accepted, cpu, started, ended


def bench_workers(url: str, shape: Shape, count: int) -> Rate:
    """Points/s (wall, from the first worker's start to the last one's end) and CPU µs per point
    (all workers) with ``count`` worker processes."""
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    work = batches(messages(shape), shape.batch)
    # the devices exist already, as they would in a running hub (a heartbeat registered them)
    _run_worker(url, [messages(Shape(1, shape.windows, 1), epoch="warm-up")])
    shares = [work[i::count] for i in range(count)]
    with multiprocessing.get_context("fork").Pool(count) as pool:
        results = pool.starmap(_run_worker, [(url, share) for share in shares])
    assert sum(accepted for accepted, *_ in results) == shape.messages
    elapsed = max(end for *_, end in results) - min(start for *_, start, _ in results)
    cpu = sum(cpu for _, cpu, *_ in results)
    return shape.points / elapsed, cpu * 1e6 / shape.points


def _rows(shape: Shape) -> Iterator[list[LimitRow]]:
    """The same window rows, batch by batch."""
    for first in range(1, shape.messages + 1, shape.batch):
        rows = []
        for seq in range(first, min(first + shape.batch, shape.messages + 1)):
            start = (T0 + timedelta(seconds=10 * seq)).isoformat()
            rows += [
                (d, start, start, p, v) for d in range(shape.windows) for p, v in POINTS.items()
            ]
        yield rows


LIMIT_TABLE = ("(device INTEGER, window_start TEXT, window_end TEXT, point TEXT, mean REAL, "
               "UNIQUE(device, window_start, point))")  # fmt: skip


def sqlite_limit(path: Path, shape: Shape) -> tuple[float, float]:
    """Plain sqlite3: one executemany and one commit per batch; points/s and CPU µs per point."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"CREATE TABLE w {LIMIT_TABLE}")
    work = list(_rows(shape))
    started, cpu = time.perf_counter(), time.process_time()
    for rows in work:
        with db:
            db.executemany("INSERT INTO w VALUES (?, ?, ?, ?, ?)", rows)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    db.close()
    return shape.points / elapsed, cpu * 1e6 / shape.points


def insert_rows(cur: psycopg.Cursor[Any], table: str, rows: list[LimitRow]) -> None:
    """The plain batched insert: one executemany."""
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows)


def copy_rows(cur: psycopg.Cursor[Any], table: str, rows: list[LimitRow]) -> None:
    """One binary COPY."""
    with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "text", "text", "float4"])  # LIMIT_TABLE's
        for row in rows:
            copy.write_row(row)


def postgres_limit(
    shape: Shape, write: Callable[[psycopg.Cursor[Any], str, list[LimitRow]], None]
) -> Rate:
    """Plain psycopg: ``write`` and one commit per batch; points/s and CPU µs per point (this
    client's and its server backend's, as for the workers)."""
    with psycopg.connect(POSTGRES_ADMIN) as db:
        table = f"bench_{uuid.uuid4().hex[:8]}"
        db.execute(f"CREATE TABLE {table} {LIMIT_TABLE}")
        db.commit()
        work, backend = list(_rows(shape)), db.info.backend_pid
        started, cpu = time.perf_counter(), time.process_time() + server_cpu(backend)
        for rows in work:
            with db.transaction(), db.cursor() as cur:
                write(cur, table, rows)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() + server_cpu(backend) - cpu
        db.execute(f"DROP TABLE {table}")
        db.commit()
    return shape.points / elapsed, cpu * 1e6 / shape.points


@contextmanager
def postgres_schema() -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def best(runs: list[Rate]) -> Rate:
    """The fastest rate and the lowest CPU cost among ``runs``."""
    return max(rate for rate, _ in runs), min(cpu for _, cpu in runs)


def measure(store: str, shape: Shape, repeat: int) -> dict[str, Rate]:
    """Best of ``repeat`` for the limit(s) and for one and two workers, interleaved."""
    runs: dict[str, list[Rate]] = defaultdict(list)
    for _ in range(repeat):
        if store == "SQLite":
            with tempfile.TemporaryDirectory() as tmp:
                runs["plain batched insert"].append(sqlite_limit(Path(tmp) / "limit.db", shape))
        else:
            runs["plain batched insert"].append(postgres_limit(shape, insert_rows))
            runs["plain COPY"].append(postgres_limit(shape, copy_rows))
        for workers in ("1", "2"):
            with _database(store) as url:
                runs[workers].append(bench_workers(url, shape, int(workers)))
    return {name: best(rates) for name, rates in runs.items()}


@contextmanager
def _database(store: str) -> Iterator[str]:
    if store == "SQLite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/hub.db"
    else:
        with postgres_schema() as url:
            yield url


def report(store: str, shape: Shape, rates: dict[str, Rate]) -> None:
    """One row per worker count: its rate and CPU cost beside each limit's, and the ratios."""
    label = f"{shape.windows} window(s) x {len(POINTS)} points/msg, {shape.batch} msg/batch"
    limits = {name: rate for name, rate in rates.items() if name.startswith("plain")}
    for workers in ("1", "2"):
        rate, cpu = rates[workers]
        line = (f"{store:<10} | {workers} worker(s), {label:<44} | "
                f"{rate:8,.0f} points/s, {cpu:5.2f} CPU-µs/point "
                f"(one core's worth: {1e6 / cpu:7,.0f} points/s)")  # fmt: skip
        for name, (limit_rate, limit_cpu) in limits.items():
            line += (f" | {name} {limit_rate:8,.0f} points/s, {limit_cpu:5.2f} CPU-µs/point: "
                     f"ratio wall {rate / limit_rate:.2f}, CPU {limit_cpu / cpu:.2f}")  # fmt: skip
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--windows", type=int, default=20, help="device windows per message")
    parser.add_argument("--batch", type=int, default=50, help="messages per transaction")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--store", choices=["SQLite", "PostgreSQL"], action="append")
    args = parser.parse_args()
    shapes = [
        Shape(args.messages, args.windows, args.batch),
        Shape(args.messages * args.windows // 4, 1, args.batch * 4),  # one window per message
    ]
    print(f"command: bench/ingest.py --messages {args.messages} --windows {args.windows} "
          f"--batch {args.batch} --repeat {args.repeat}")  # fmt: skip
    print(f"machine: {platform.platform()} | python {platform.python_version()} | "
          f"{os.cpu_count()} cores | load {_load()}")  # fmt: skip
    for shape in shapes:
        for store in args.store or ["SQLite", "PostgreSQL"]:
            report(store, shape, measure(store, shape, args.repeat))
    print(f"load at the end: {_load()}")


def _load() -> str:
    return " / ".join(f"{load:.1f}" for load in os.getloadavg()) + " (1 / 5 / 15 min)"


if __name__ == "__main__":
    main()
