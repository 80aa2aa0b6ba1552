"""Hub ingest throughput on SQLite and PostgreSQL: IngestWorker.process (one transaction per
message) and IngestWorker.process_batch (one transaction per batch, a savepoint per message) with
batches of 1 and 200, each against the database's own limit measured in the same run: the same
window rows written with plain DB-API, one statement per message and one commit per message or per
batch; no decoding, no dedupe, no latest values, no topology lookups, no savepoints.

    .venv/bin/python bench/ingest.py [messages]
"""

from __future__ import annotations

import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import text

from campus_protocol import Envelope, PointStats, Telemetry, encode, uplink_topic
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.ingest.worker import IngestWorker

POINTS = {"co2": 812.0, "temperature": 23.4, "humidity": 41.5}
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def messages(count: int) -> list[tuple[str, bytes]]:
    out = []
    for seq in range(1, count + 1):
        start = T0 + timedelta(seconds=10 * seq)
        body = Telemetry(
            device=f"co2-{seq % 20}", profile="sensecap_s_co2_03", room="r101",
            window_start=start, window_end=start + timedelta(seconds=10),
            points={
                p: PointStats(count=10, min=v, max=v, mean=v, last=v) for p, v in POINTS.items()
            },
        )  # fmt: skip
        envelope = Envelope.wrap(node="gw-bench", epoch="bench", seq=seq, body=body, sent_at=start)
        out.append((uplink_topic("gw-bench", envelope.kind), encode(envelope)))
    return out


def bench_worker(url: str, batch: list[tuple[str, bytes]], size: int | None) -> float:
    """msg/s through ``process`` (``size`` None) or ``process_batch`` in batches of ``size``."""
    engine = make_engine(url)
    create_schema(engine)
    worker = IngestWorker(make_sessionmaker(engine))
    started = time.perf_counter()
    if size is None:
        for topic, payload in batch:
            worker.process(topic, payload)
    else:
        for i in range(0, len(batch), size):
            worker.process_batch(batch[i : i + size])
    elapsed = time.perf_counter() - started
    assert worker.accepted == len(batch), (worker.accepted, worker.rejections)
    engine.dispose()
    return len(batch) / elapsed


def _rows(seq: int) -> list[tuple[str, str, str, float]]:
    return [(f"co2-{seq % 20}", str(seq), p, v) for p, v in POINTS.items()]


def bench_sqlite_limit(path: Path, count: int, size: int) -> float:
    """Plain sqlite3: one executemany per message, one commit per ``size`` messages."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE w (device TEXT, start TEXT, point TEXT, mean REAL, "
               "UNIQUE(device, start, point))")  # fmt: skip
    started = time.perf_counter()
    for first in range(0, count, size):
        with db:
            for seq in range(first, min(first + size, count)):
                db.executemany("INSERT INTO w VALUES (?, ?, ?, ?)", _rows(seq))
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def bench_postgres_limit(count: int, size: int) -> float:
    """Plain psycopg: one executemany per message, one commit per ``size`` messages."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as db:
        table = f"bench_{uuid.uuid4().hex[:8]}"
        db.execute(f"CREATE TABLE {table} (device TEXT, start TEXT, point TEXT, mean REAL, "
                   "UNIQUE(device, start, point))")  # fmt: skip
        db.commit()
        started = time.perf_counter()
        for first in range(0, count, size):
            with db.transaction(), db.cursor() as cur:
                for seq in range(first, min(first + size, count)):
                    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", _rows(seq))
        elapsed = time.perf_counter() - started
        db.execute(f"DROP TABLE {table}")
        db.commit()
    return count / elapsed


def postgres_schema_url() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{POSTGRES}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    engine = make_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


RUNS: list[tuple[str, int | None, int]] = [
    # label, worker batch size (None: process), commits per message in the DB-API reference
    ("IngestWorker.process", None, 1),
    ("process_batch, batch 1", 1, 1),
    ("process_batch, batch 200", 200, 200),
]


def report(store: str, label: str, worker: float, limit: float, size: int) -> None:
    commit = "each message" if size == 1 else f"per {size}"
    print(f"{store:<11} {label:<25} {worker:8,.0f} msg/s | plain DB-API, commit "
          f"{commit:<12} {limit:8,.0f} msg/s | ratio {worker / limit:.2f}")  # fmt: skip


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    batch = messages(count)
    print(f"command: bench/ingest.py {count}")
    print(f"machine: {platform.platform()} | python {platform.python_version()}")
    print(f"message: telemetry window, {len(POINTS)} points, {len(batch[0][1])} bytes, "
          "20 devices on one gateway")  # fmt: skip
    for label, size, commit_every in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            worker = bench_worker(f"sqlite:///{tmp}/hub.db", batch, size)
            limit = bench_sqlite_limit(Path(tmp) / "limit.db", count, commit_every)
        report("SQLite", label, worker, limit, commit_every)
    for label, size, commit_every in RUNS:
        url, schema = postgres_schema_url()
        try:
            worker = bench_worker(url, batch, size)
        finally:
            drop_schema(schema)
        limit = bench_postgres_limit(count, commit_every)
        report("PostgreSQL", label, worker, limit, commit_every)


if __name__ == "__main__":
    main()
