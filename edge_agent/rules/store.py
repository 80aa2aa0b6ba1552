"""Rule state that survives a restart: each (device, rule) lifecycle, the rolling series, and the
audit of local actions and commands. One SQLite file (WAL, ``synchronous=FULL``) in the data dir.

Lifecycle states are written on every change (a raise must never be forgotten, or it would be
raised twice); series are written in bulk every few seconds and at stop (losing the last seconds
of a rolling mean costs nothing that matters).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    device TEXT NOT NULL,
    rule   TEXT NOT NULL,
    state  TEXT NOT NULL,
    PRIMARY KEY (device, rule)
);
CREATE TABLE IF NOT EXISTS point_series (
    device TEXT NOT NULL,
    point  TEXT NOT NULL,
    state  TEXT NOT NULL,
    PRIMARY KEY (device, point)
);
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    origin   TEXT NOT NULL,
    ref      TEXT NOT NULL,
    device   TEXT NOT NULL,
    what     TEXT NOT NULL,
    status   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command_seen (
    id     TEXT PRIMARY KEY,
    result TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS manual_hold (
    device TEXT NOT NULL,
    point  TEXT NOT NULL,
    until  REAL NOT NULL,
    PRIMARY KEY (device, point)
);
"""


class RuleStore:
    """The rule engine's and action runner's durable state (one thread: the event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- lifecycles and series ------------------------------------------------------------------

    def rule_states(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._db.execute("SELECT device, rule, state FROM rule_state")
        return {(d, r): json.loads(s) for d, r, s in rows}

    def save_rule_state(self, device: str, rule: str, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO rule_state (device, rule, state) VALUES (?, ?, ?)",
            (device, rule, json.dumps(state)),
        )

    def series(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._db.execute("SELECT device, point, state FROM point_series")
        return {(d, p): json.loads(s) for d, p, s in rows}

    def save_series(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO point_series (device, point, state) VALUES (?, ?, ?)",
                [(d, p, json.dumps(s)) for d, p, s in items],
            )
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- audit, commands, manual holds ----------------------------------------------------------

    def audit(
        self, *, origin: str, ref: str, device: str, what: str, status: str, detail: str
    ) -> int:
        """Append one audit record (actions and commands with their result); returns its id."""
        cursor = self._db.execute(
            "INSERT INTO audit (at, origin, ref, device, what, status, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), origin, ref, device, what, status, detail[:500]),
        )
        return int(cursor.lastrowid or 0)

    def audit_records(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, at, origin, ref, device, what, status, detail FROM audit"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("id", "at", "origin", "ref", "device", "what", "status", "detail")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def command_result(self, command_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT result FROM command_seen WHERE id = ?", (command_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_command_result(self, command_id: str, result: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO command_seen (id, result) VALUES (?, ?)",
            (command_id, json.dumps(result)),
        )

    def hold(self, device: str, point: str, until: float) -> None:
        """Hold automatic actions off ``device.point`` until ``until`` (a manual override)."""
        self._db.execute(
            "INSERT OR REPLACE INTO manual_hold (device, point, until) VALUES (?, ?, ?)",
            (device, point, until),
        )

    def held_until(self, device: str, point: str) -> float | None:
        row = self._db.execute(
            "SELECT until FROM manual_hold WHERE device = ? AND point = ?", (device, point)
        ).fetchone()
        return None if row is None else float(row[0])
