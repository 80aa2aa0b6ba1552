"""Durable store-and-forward outbox in SQLite (WAL): the per-node sequence lives here.

Design
------
* A message counts as taken once its row is committed. ``append`` bumps the node's sequence
  counter and inserts the row in one transaction, so a committed row always has a seq that was
  never handed out before, and a crash leaves either both or neither.
* Rows are deleted only by ``ack`` (after the hub broker's PUBACK) or ``discard`` (a message that
  can never be delivered, counted with a reason). Rows left from the last run go out first, since
  ``pending`` returns rows in seq order.
* Every outbox has an ``epoch``: a random id made when the file is created and stored in it. The
  hub deduplicates on ``(node, epoch, seq)``, so a replaced gateway or a wiped data directory
  starts a new epoch at seq 0 and is never mistaken for a replay of the old one.
* ``next_seq`` hands out a sequence number without a row, for messages that are not queued
  (the MQTT will and the retained online state).
* Each row carries a ``lane`` (0 event, 1 health/state/other, 2 telemetry) so priority lanes and
  counted eviction of the lowest lane can be added without a migration; today rows leave in
  seq order.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. With ``NORMAL`` a WAL commit survives
an application crash but the last transactions can be lost on power failure, which is common on
school gateways. Losing them would not only lose readings: it would roll the sequence counter
back, and the next messages would reuse seqs the hub has already seen and silently drop them as
duplicates. The write rate (one row per device per window, one delete per PUBACK) is tens of
transactions per second at most, so an fsync per commit costs nothing that matters.

The API is synchronous and meant for one thread (the agent's event loop); each call is one short
transaction.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from campus_protocol.envelope import new_epoch
from campus_protocol.messages import Body, MessageKind
from edge_agent.health import OUTBOX_DEPTH, OUTBOX_DISCARDED

#: lower is more urgent
LANES: dict[MessageKind, int] = {MessageKind.EVENT: 0, MessageKind.TELEMETRY: 2}
DEFAULT_LANE = 1
LANE_NAMES = {0: "event", 1: "health", 2: "telemetry"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY,
    lane       INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    created_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_lane_seq ON outbox (lane, seq);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', -1);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One queued message: the body is the JSON of a ``campus_protocol`` body model."""

    seq: int
    lane: int
    kind: MessageKind
    body: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    by_kind: dict[str, int]
    last_seq: int
    oldest_created_at: float | None
    path: Path


class Outbox:
    """The SQLite outbox of one node (``path`` is created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.epoch = self._load_epoch()
        OUTBOX_DEPTH.set(self.depth())

    def append(self, kind: MessageKind, body: Body) -> int:
        """Queue ``body``; returns its seq, assigned in the same transaction as the insert."""
        data = body.model_dump_json().encode()
        with self._transaction():
            seq = self._bump_seq()
            self._db.execute(
                "INSERT INTO outbox (seq, lane, kind, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (seq, LANES.get(kind, DEFAULT_LANE), kind.value, data, time.time()),
            )
        OUTBOX_DEPTH.inc()
        return seq

    def next_seq(self) -> int:
        """Hand out a seq for a message that is sent directly rather than queued."""
        with self._transaction():
            return self._bump_seq()

    def pending(self, limit: int = 100) -> list[OutboxRow]:
        """The oldest ``limit`` rows, in seq order."""
        rows = self._db.execute(
            "SELECT seq, lane, kind, body, created_at FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [OutboxRow(s, lane, MessageKind(k), bytes(b), c) for s, lane, k, b, c in rows]

    def ack(self, seq: int) -> None:
        """Delete a delivered row (a no-op when it is already gone)."""
        with self._transaction():
            deleted = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
        if deleted:
            OUTBOX_DEPTH.dec()

    def discard(self, row: OutboxRow, reason: str, *, intentional: bool = False) -> None:
        """Delete a row that can never be delivered and count it under ``reason``."""
        self.ack(row.seq)
        OUTBOX_DISCARDED.labels(
            LANE_NAMES.get(row.lane, str(row.lane)), reason, str(intentional).lower()
        ).inc()

    def depth(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    def last_seq(self) -> int:
        """The last seq handed out (-1 before the first)."""
        (value,) = self._db.execute("SELECT value FROM counters WHERE name = 'last_seq'").fetchone()
        return int(value)

    def stats(self) -> OutboxStats:
        by_kind = dict(
            self._db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind ORDER BY kind")
        )
        (oldest,) = self._db.execute("SELECT min(created_at) FROM outbox").fetchone()
        return OutboxStats(
            depth=sum(by_kind.values()),
            by_kind=by_kind,
            last_seq=self.last_seq(),
            oldest_created_at=oldest,
            path=self.path,
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_epoch(self) -> str:
        """The outbox's epoch, made (random) the first time this file is opened."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)", (new_epoch(),)
            )
            (epoch,) = self._db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        return str(epoch)

    def _bump_seq(self) -> int:
        (seq,) = self._db.execute(
            "UPDATE counters SET value = value + 1 WHERE name = 'last_seq' RETURNING value"
        ).fetchone()
        return int(seq)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
