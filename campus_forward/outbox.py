"""Durable store-and-forward outbox in SQLite (WAL): sequence, priority lanes and a disk budget.

Design
------
* A message counts as taken once its row is committed. ``append`` (one message) and
  ``append_many`` (a batch, one transaction) bump the node's sequence counter and insert the rows
  in the same transaction, so a committed row always has a seq that was never handed out before,
  and a crash leaves either all or none.
* Rows are deleted only by ``ack``/``ack_many`` (after the hub broker's PUBACK), ``discard`` (a
  message that can never be delivered, counted with a reason) or the disk budget (below).
* Every outbox has an ``epoch``: a random id made when the file is created and stored in it. The
  hub deduplicates on ``(node, epoch, seq)``, so a replaced gateway or a wiped data directory
  starts a new epoch at seq 0 and is never mistaken for a replay of the old one.
* ``next_seq`` hands out a sequence number without a row, for messages that are not queued
  (the MQTT will and the retained online state).
* A producer that derives messages from other data (a regional hub rolling up its telemetry)
  passes ``marks`` to ``append_many``: named progress values ("rolled up to 10:05") committed in
  the transaction that stores the rows they produced, read back with ``mark``. After a crash it
  resumes from its mark and neither skips nor repeats a message.
* ``counters`` keeps ``appended:<kind>``, every row ever queued by kind: the producer's own ledger
  of what it handed over, which a receiver's count can be checked against.
* Priority lanes: each row has a ``lane`` (0 event, 1 health/state/other, 2 telemetry) and a
  ``position`` (its seq, or for a merged row the position of its oldest source). ``pending``
  returns events first, then the others oldest first, except that ``live_share`` of each batch
  goes to the newest telemetry, so live data is not starved by a replay backlog.
* Rows handed to a publish are marked (``mark_sent``) first. A marked row may already be at the
  hub, so the budget never merges or drops it: every window is delivered, merged or dropped,
  never two of these.

Disk budget (``budget_bytes``: the bytes of queued bodies plus ``ROW_OVERHEAD_BYTES`` per row).
When an append takes the outbox over budget, it is brought back under ``LOW_WATER`` of it, each
step one transaction, in this order:

1. merge: the oldest unmerged telemetry rows are rewritten as ``TelemetryBatch`` rows whose
   windows are merged per device into ``merge_window_s`` buckets (``campus_forward.merge``: count,
   min, max, mean and last stay exact; p95 becomes an upper bound);
2. drop superseded heartbeats: the oldest ``health`` rows, never the newest;
3. drop the oldest telemetry rows (by then all merged).

Events, states, command results and reports are never dropped: with only those left the outbox
stays over budget and says so once in the log. Every merge and drop is counted in the
``counters`` table in the transaction that does it (so the totals survive restarts and belong to
the epoch) and in Prometheus: merged windows, and dropped rows and windows by lane and reason.

A full or read-only disk makes writes fail: the first failure of a kind is logged with the path,
as is the recovery, and the caller gets ``OutboxWriteError`` with a bounded reason (``disk_full``,
``read_only``, ``io_error``). A file SQLite calls corrupt is moved aside by ``open_or_replace``
(with its WAL) and a new outbox, with a new epoch, takes its place.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. With ``NORMAL`` a WAL commit survives
an application crash but the last transactions can be lost on power failure, which is common on
school gateways. Losing them would not only lose readings: it would roll the sequence counter
back, and the next messages would reuse seqs the hub has already seen and silently drop them as
duplicates. ``append_many`` and ``ack_many`` make that one fsync per batch rather than per row.

The API is synchronous and meant for one thread (the agent's event loop); each call is one short
transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from campus_forward.merge import merge_windows
from campus_forward.metrics import (
    OUTBOX_DEPTH,
    OUTBOX_DISCARDED,
    OUTBOX_DISCARDED_WINDOWS,
    OUTBOX_MERGED_WINDOWS,
    OUTBOX_REPLACED,
    BudgetReport,
)
from campus_forward.packing import pack_windows
from campus_protocol.envelope import new_epoch
from campus_protocol.messages import (
    Body,
    MessageKind,
    Telemetry,
    TelemetryBatch,
    parse_body_json,
)

log = logging.getLogger(__name__)

#: lower is more urgent
LANES: dict[MessageKind, int] = {
    MessageKind.EVENT: 0,
    MessageKind.ALERTCHANGE: 0,
    MessageKind.TELEMETRY: 2,
}
DEFAULT_LANE = 1
LANE_NAMES = {0: "event", 1: "health", 2: "telemetry"}
TELEMETRY_LANE = 2

DEFAULT_BUDGET_BYTES = 1 << 30
DEFAULT_MERGE_WINDOW_S = 900.0
ROW_OVERHEAD_BYTES = 64  # SQLite row, index entries and page slack per queued row (bench/outbox.py)
LOW_WATER = 0.9  # over budget, compact down to this share of it
MERGE_CHUNK_ROWS = 256
RATE_HORIZON_S = 900.0  # offline autonomy uses the append rate over this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY,
    lane       INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    created_at REAL    NOT NULL
);
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
# columns added after the first release; older files get them on open
_ADDED_COLUMNS = {
    "position": "INTEGER",  # send order within a lane: the seq, or a merged row's oldest source
    "windows": "INTEGER NOT NULL DEFAULT 0",  # telemetry windows the row stands for
    "merged": "INTEGER NOT NULL DEFAULT 0",  # 1: written by a merge, never merged again
    "attempts": "INTEGER NOT NULL DEFAULT 0",  # times handed to a publish
}
_INDEXES = f"""
UPDATE outbox SET position = seq WHERE position IS NULL;
CREATE INDEX IF NOT EXISTS outbox_lane_position ON outbox (lane, position, seq);
CREATE INDEX IF NOT EXISTS outbox_unmerged ON outbox (position, seq)
    WHERE lane = {TELEMETRY_LANE} AND merged = 0;
DROP INDEX IF EXISTS outbox_lane_seq;
"""
_COLUMNS = "seq, lane, kind, body, created_at, attempts"
_ORDER = "position, seq"

_SQLITE_FULL = 13
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class OutboxWriteError(Exception):
    """A write the disk refused; ``reason`` is ``disk_full``, ``read_only`` or ``io_error``."""

    def __init__(self, reason: str, path: Path, cause: sqlite3.Error) -> None:
        super().__init__(f"outbox {path}: {reason.replace('_', ' ')} ({cause})")
        self.reason = reason


class OutboxCorrupt(Exception):
    """The outbox file is not a sound SQLite database."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One queued message: the body is the JSON of a ``campus_protocol`` body model."""

    seq: int
    lane: int
    kind: MessageKind
    body: bytes
    created_at: float
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    by_kind: dict[str, int]
    last_seq: int
    oldest_created_at: float | None
    path: Path


class Outbox:
    """The SQLite outbox of one node (``path`` is created if missing).

    Raises ``OutboxCorrupt`` when the file is not a sound database (see ``open_or_replace``).
    """

    def __init__(
        self,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        merge_window_s: float = DEFAULT_MERGE_WINDOW_S,
    ) -> None:
        self.path = path
        self.budget_bytes = budget_bytes
        self.merge_window_s = merge_window_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._check_sound()
            self._db.executescript(_SCHEMA)
            self._add_columns()
            self._db.executescript(_INDEXES)
            self.epoch = self._load_epoch()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if getattr(exc, "sqlite_errorcode", None) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise OutboxCorrupt(f"{path}: {exc}") from exc
            raise
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM outbox"
        ).fetchone()
        self._bytes = int(size) + ROW_OVERHEAD_BYTES * int(count)
        self._appended: deque[tuple[float, int]] = deque()  # (monotonic time, bytes)
        self._disk = "ok"
        self._over_budget_logged = False
        self._unstored: dict[str, int] = {}
        OUTBOX_DEPTH.set(int(count))

    @classmethod
    def open_or_replace(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        merge_window_s: float = DEFAULT_MERGE_WINDOW_S,
    ) -> Outbox:
        """Open ``path``; a corrupt file is moved aside (logged) and a new outbox started."""
        try:
            return cls(path, budget_bytes=budget_bytes, merge_window_s=merge_window_s)
        except OutboxCorrupt as exc:
            aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
            for suffix in ("", "-wal", "-shm"):
                part = path.with_name(path.name + suffix)
                if part.exists():
                    part.rename(aside.with_name(aside.name + suffix))
            OUTBOX_REPLACED.inc()
            log.error(
                "outbox %s is corrupt (%s); moved it aside to %s and started a new outbox "
                "(new epoch): the rows in the old file were not sent",
                path,
                exc.__cause__ or exc,
                aside,
            )
            return cls(path, budget_bytes=budget_bytes, merge_window_s=merge_window_s)

    def append(self, kind: MessageKind, body: Body) -> int:
        """Queue ``body``; returns its seq, assigned in the same transaction as the insert."""
        return self.append_many([(kind, body)])[0]

    def append_many(
        self,
        messages: Sequence[tuple[MessageKind, Body]],
        *,
        marks: Mapping[str, str] | None = None,
    ) -> list[int]:
        """Queue ``messages`` in one transaction, with ``marks`` (see ``mark``); returns their
        seqs, in order.

        Raises ``OutboxWriteError`` (nothing stored) when the disk refuses the write.
        """
        if not messages and not marks:
            return []
        now = time.time()
        encoded = [(kind, b.model_dump_json().encode(), _windows(b)) for kind, b in messages]
        with self._writing():
            last = self._bump_seq(len(encoded)) if encoded else self.last_seq()
            first = last - len(encoded) + 1
            self._db.executemany(
                "INSERT INTO outbox (seq, lane, kind, body, created_at, position, windows) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (first + i, LANES.get(kind, DEFAULT_LANE), kind.value, data, now, first + i, n)
                    for i, (kind, data, n) in enumerate(encoded)
                ],
            )
            for kind, count in Counter(kind for kind, _, _ in encoded).items():
                self._add_counter(f"appended:{kind.value}", count)
            self._db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [(f"mark:{name}", value) for name, value in (marks or {}).items()],
            )
        self._write_succeeded()
        added = sum(len(data) for _, data, _ in encoded) + ROW_OVERHEAD_BYTES * len(encoded)
        self._bytes += added
        self._appended.append((time.monotonic(), added))
        OUTBOX_DEPTH.inc(len(encoded))
        if self._bytes > self.budget_bytes:
            with contextlib.suppress(OutboxWriteError):  # stored all the same; logged
                self.enforce_budget()
        return list(range(first, last + 1))

    def mark(self, name: str) -> str | None:
        """The value last stored under ``name`` by ``append_many(..., marks=...)``, or None."""
        query = "SELECT value FROM meta WHERE name = ?"
        row = self._db.execute(query, (f"mark:{name}",)).fetchone()
        return None if row is None else str(row[0])

    def appended(self) -> dict[str, int]:
        """Rows ever queued in this outbox (its epoch), by kind."""
        rows = self._db.execute("SELECT name, value FROM counters WHERE name LIKE 'appended:%'")
        return {name.removeprefix("appended:"): int(value) for name, value in rows}

    def next_seq(self) -> int:
        """Hand out a seq for a message that is sent directly rather than queued."""
        with self._writing():
            return self._bump_seq(1)

    def pending(self, limit: int = 100, *, live_share: float = 0.0) -> list[OutboxRow]:
        """Up to ``limit`` rows to send: events first, then health/other and telemetry oldest
        first, with ``live_share`` of the room left by events given to the newest telemetry."""
        rows = self._select("lane = 0", _ORDER, limit)
        room = limit - len(rows)
        newest = self._select(
            f"lane = {TELEMETRY_LANE}", "position DESC, seq DESC", math.ceil(room * live_share)
        )
        taken = {row.seq for row in newest}
        backlog = self._select("lane > 0", f"lane, {_ORDER}", room)
        rows += [row for row in backlog if row.seq not in taken][: room - len(newest)]
        return rows + newest[::-1]

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Record that these rows are being handed to a publish (so never merged or dropped)."""
        with self._writing():
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", [(s,) for s in seqs]
            )

    def ack(self, seq: int) -> None:
        """Delete a delivered row (a no-op when it is already gone)."""
        self.ack_many([seq])

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Delete delivered rows in one transaction (rows already gone are skipped)."""
        with self._writing():
            freed, deleted, _ = self._delete(seqs)
        self._bytes -= freed
        OUTBOX_DEPTH.dec(deleted)

    def discard(self, row: OutboxRow, reason: str, *, intentional: bool = False) -> None:
        """Delete a row that can never be delivered and count it under ``reason``."""
        with self._writing():
            freed, deleted, windows = self._delete([row.seq])
            self._count_drops(row.lane, reason, deleted, windows)
        self._bytes -= freed
        OUTBOX_DEPTH.dec(deleted)
        OUTBOX_DISCARDED.labels(_lane_name(row.lane), reason, str(intentional).lower()).inc(deleted)

    def count_unstored(self, kind: MessageKind, reason: str) -> None:
        """Count a message that could not be stored (the disk refused it)."""
        lane = LANES.get(kind, DEFAULT_LANE)
        key = f"{_lane_name(lane)}:{reason}"
        self._unstored[key] = self._unstored.get(key, 0) + 1
        OUTBOX_DISCARDED.labels(_lane_name(lane), reason, "false").inc()

    def enforce_budget(self) -> None:
        """Merge, then drop, until under ``LOW_WATER`` of the budget (see the module notes)."""
        target = self.budget_bytes * LOW_WATER
        while self._bytes > target:
            if not (
                self._merge_oldest()
                or self._drop_oldest(MessageKind.HEALTH, target, keep_newest=True)
                or self._drop_oldest(MessageKind.TELEMETRY, target, keep_newest=False)
            ):
                if not self._over_budget_logged:
                    log.warning(
                        "outbox %s is over its budget (%d of %d bytes) with nothing left it "
                        "may merge or drop: events and states are never dropped",
                        self.path,
                        self._bytes,
                        self.budget_bytes,
                    )
                    self._over_budget_logged = True
                return
        self._over_budget_logged = False

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

    def budget_report(self) -> BudgetReport:
        """Budget use, offline autonomy and every merge and drop counted so far."""
        counters = dict(self._db.execute("SELECT name, value FROM counters"))
        discarded = {
            name.removeprefix("discarded:"): int(value)
            for name, value in counters.items()
            if name.startswith("discarded:")
        }
        for key, count in self._unstored.items():
            discarded[key] = discarded.get(key, 0) + count
        return BudgetReport(
            bytes=self._bytes,
            budget_bytes=self.budget_bytes,
            offline_autonomy_h=self._autonomy_h(),
            merged_windows=int(counters.get("merged_windows", 0)),
            discarded_windows=int(counters.get("discarded_windows", 0)),
            discarded=dict(sorted(discarded.items())),
            disk=self._disk,
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- budget -------------------------------------------------------------------------------

    def _merge_oldest(self) -> bool:
        """Rewrite the oldest unmerged, unsent telemetry rows as merged batches.

        Rows whose windows all lie in buckets that have closed (older than the bucket of the
        newest queued window) are taken, so buckets are merged whole; only when there are none
        is the open bucket merged too.
        """
        rows = self._db.execute(
            f"SELECT seq, body, windows, position FROM outbox "
            f"WHERE lane = {TELEMETRY_LANE} AND merged = 0 AND attempts = 0 "
            f"ORDER BY {_ORDER} LIMIT ?",
            (MERGE_CHUNK_ROWS,),
        ).fetchall()
        if not rows:
            return False
        (newest,) = self._db.execute(
            f"SELECT body FROM outbox WHERE lane = {TELEMETRY_LANE} AND merged = 0 "
            f"ORDER BY position DESC, seq DESC LIMIT 1"
        ).fetchone()
        open_from = max(
            (w.window_start.timestamp() for w in _telemetry_windows(bytes(newest)) or ()),
            default=math.inf,
        )
        open_from = math.floor(open_from / self.merge_window_s) * self.merge_window_s
        parsed = [(seq, count, _telemetry_windows(bytes(body))) for seq, body, count, _ in rows]
        closed = list(
            itertools.takewhile(
                lambda r: all(w.window_start.timestamp() < open_from for w in r[2] or ()), parsed
            )
        )
        chosen = closed or parsed
        rows = rows[: len(chosen)]
        windows = [w for _, _, ws in chosen for w in ws or ()]
        unreadable = [(seq, count) for seq, count, ws in chosen if ws is None]
        merged = merge_windows(windows, self.merge_window_s)
        position = rows[0][3]
        new_rows: list[tuple[bytes, int]] = []  # (body, source windows), each a sendable message
        taken = 0
        for body in pack_windows([m.window for m in merged]):
            count = len(body.windows) if isinstance(body, TelemetryBatch) else 1
            sources = sum(m.sources for m in merged[taken : taken + count])
            new_rows.append((body.model_dump_json().encode(), sources))
            taken += count
        now = time.time()
        with self._writing():
            freed, deleted, _ = self._delete([seq for seq, *_ in rows])
            if new_rows:
                last = self._bump_seq(len(new_rows))
                first = last - len(new_rows) + 1
                self._db.executemany(
                    "INSERT INTO outbox (seq, lane, kind, body, created_at, position, windows, "
                    "merged) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                    [
                        (first + i, TELEMETRY_LANE, "telemetry", data, now, position, count)
                        for i, (data, count) in enumerate(new_rows)
                    ],
                )
            combined = sum(m.sources for m in merged if m.sources > 1)
            self._add_counter("merged_windows", combined)
            if unreadable:
                self._count_drops(
                    TELEMETRY_LANE, "invalid_body", len(unreadable), sum(n for _, n in unreadable)
                )
        added = sum(len(d) for d, _ in new_rows) + ROW_OVERHEAD_BYTES * len(new_rows)
        self._bytes += added - freed
        OUTBOX_DEPTH.inc(len(new_rows) - deleted)
        OUTBOX_MERGED_WINDOWS.inc(combined)
        if unreadable:
            OUTBOX_DISCARDED.labels("telemetry", "invalid_body", "false").inc(len(unreadable))
        return True

    def _drop_oldest(self, kind: MessageKind, target: float, *, keep_newest: bool) -> bool:
        """Drop the oldest unsent rows of ``kind`` until the outbox is under ``target``."""
        lane = LANES.get(kind, DEFAULT_LANE)
        rows = self._db.execute(
            f"SELECT seq, length(body) FROM outbox "
            f"WHERE lane = ? AND kind = ? AND attempts = 0 ORDER BY {_ORDER} LIMIT 4096",
            (lane, kind.value),
        ).fetchall()
        if keep_newest and rows:
            (newest,) = self._db.execute(
                "SELECT max(seq) FROM outbox WHERE kind = ?", (kind.value,)
            ).fetchone()
            rows = [r for r in rows if r[0] != newest]
        chosen: list[int] = []
        excess = self._bytes - target
        for seq, size in rows:
            if excess <= 0:
                break
            chosen.append(seq)
            excess -= size + ROW_OVERHEAD_BYTES
        if not chosen:
            return False
        with self._writing():
            freed, deleted, windows = self._delete(chosen)
            self._count_drops(lane, "disk_budget", deleted, windows)
        self._bytes -= freed
        OUTBOX_DEPTH.dec(deleted)
        OUTBOX_DISCARDED.labels(_lane_name(lane), "disk_budget", "true").inc(deleted)
        return True

    def _autonomy_h(self) -> float | None:
        now = time.monotonic()
        while self._appended and self._appended[0][0] < now - RATE_HORIZON_S:
            self._appended.popleft()
        if not self._appended:
            return None
        span = max(now - self._appended[0][0], 1.0)
        rate_per_h = sum(n for _, n in self._appended) / span * 3600
        return max(0.0, self.budget_bytes - self._bytes) / rate_per_h

    # -- storage ------------------------------------------------------------------------------

    def _select(self, where: str, order: str, limit: int) -> list[OutboxRow]:
        if limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY {order} LIMIT ?", (limit,)
        ).fetchall()
        return [OutboxRow(s, lane, MessageKind(k), bytes(b), c, a) for s, lane, k, b, c, a in rows]

    def _delete(self, seqs: Iterable[int]) -> tuple[int, int, int]:
        """Delete rows by seq inside a transaction; returns budget bytes freed, rows deleted and
        the telemetry windows they stood for."""
        freed = deleted = windows = 0
        for seq in seqs:
            row = self._db.execute(
                "DELETE FROM outbox WHERE seq = ? RETURNING length(body), windows", (seq,)
            ).fetchone()
            if row is not None:
                freed += int(row[0]) + ROW_OVERHEAD_BYTES
                deleted += 1
                windows += int(row[1])
        return freed, deleted, windows

    def _count_drops(self, lane: int, reason: str, rows: int, windows: int) -> None:
        """Count drops in the counters table (call inside the transaction that drops)."""
        self._add_counter(f"discarded:{_lane_name(lane)}:{reason}", rows)
        if windows:
            self._add_counter("discarded_windows", windows)
            OUTBOX_DISCARDED_WINDOWS.labels(reason).inc(windows)

    def _add_counter(self, name: str, amount: int) -> None:
        if amount:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def _check_sound(self) -> None:
        (verdict,) = self._db.execute("PRAGMA quick_check(1)").fetchone()
        if verdict != "ok":
            raise OutboxCorrupt(f"{self.path}: quick_check says {verdict}")

    def _add_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for name, declaration in _ADDED_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {declaration}")

    def _load_epoch(self) -> str:
        """The outbox's epoch, made (random) the first time this file is opened."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)", (new_epoch(),)
            )
            (epoch,) = self._db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        return str(epoch)

    def _bump_seq(self, count: int) -> int:
        """Reserve ``count`` seqs; returns the last of them."""
        (seq,) = self._db.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'last_seq' RETURNING value",
            (count,),
        ).fetchone()
        return int(seq)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _writing(self) -> _Writing:
        return _Writing(self)

    def _write_failed(self, exc: sqlite3.Error) -> OutboxWriteError:
        code = int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # primary of an extended code
        reason = {_SQLITE_FULL: "disk_full", _SQLITE_READONLY: "read_only"}.get(code, "io_error")
        if reason != self._disk:
            log.error("outbox %s: writes refused (%s): %s", self.path, reason, exc)
            self._disk = reason
        return OutboxWriteError(reason, self.path, exc)

    def _write_succeeded(self) -> None:
        """An append got through (deletes and small updates may pass on a nearly full disk)."""
        if self._disk != "ok":
            log.info("outbox %s: writes succeed again (was %s)", self.path, self._disk)
            self._disk = "ok"


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class _Writing:
    """A write transaction whose refusal by the disk becomes a logged ``OutboxWriteError``."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._db = outbox._db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._outbox._write_failed(exc) from exc

    def __exit__(self, exc_type: object, exc: object, _tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as failed:
                self._rollback()
                raise self._outbox._write_failed(failed) from failed
            return
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            raise self._outbox._write_failed(exc) from exc

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


def _lane_name(lane: int) -> str:
    return LANE_NAMES.get(lane, str(lane))


def _windows(body: Body) -> int:
    if isinstance(body, TelemetryBatch):
        return len(body.windows)
    return 1 if isinstance(body, Telemetry) else 0


def _telemetry_windows(body: bytes) -> list[Telemetry] | None:
    """The windows of a stored telemetry body; None when it fits no telemetry model."""
    try:
        parsed = parse_body_json(MessageKind.TELEMETRY, body)
    except ValidationError:
        return None
    if isinstance(parsed, TelemetryBatch):
        return list(parsed.windows)
    return [parsed] if isinstance(parsed, Telemetry) else None
