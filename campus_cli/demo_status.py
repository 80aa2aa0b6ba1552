"""The demo's periodic status line, in words: schools by status, alerts by level, backlog,
and whatever has been poked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

LEVEL_NAMES = {"I": "red", "II": "orange", "III": "yellow", "IV": "blue"}


def status_line(
    now: datetime,
    schools: Sequence[dict[str, Any]],
    alerts: Sequence[dict[str, Any]],
    *,
    backlog: int | None,
    active: Sequence[str],
    restarts: int = 0,
) -> str:
    """``10:02:11  12 schools: 11 online, 1 degraded (d1-s01) | 2 alerts: 1 orange, 1 yellow |
    outbox backlog 0 | poked: d1-s01/r101-air: offline``."""
    by_status: dict[str, list[str]] = {"online": [], "degraded": [], "offline": []}
    for school in schools:
        by_status.setdefault(school["status"], []).append(school["id"])
    parts = []
    for status, ids in by_status.items():
        if status == "online" or not ids:
            parts.append(f"{len(ids)} {status}")
        else:
            shown = ", ".join(ids[:4]) + (", …" if len(ids) > 4 else "")
            parts.append(f"{len(ids)} {status} ({shown})")
    line = f"{now:%H:%M:%S}  {len(schools)} schools: {', '.join(parts)}"
    levels = Counter(a["severity"] for a in alerts)
    if alerts:
        counts = ", ".join(
            f"{levels[level]} {name}" for level, name in LEVEL_NAMES.items() if levels[level]
        )
        line += f" | {len(alerts)} active alerts: {counts}"
    else:
        line += " | no active alerts"
    if backlog is not None:
        line += f" | outbox backlog {backlog}"
    if restarts:
        line += f" | {restarts} agent restarts"
    if active:
        line += f" | poked: {'; '.join(active)}"
    return line
