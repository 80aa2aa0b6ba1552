"""Prometheus metrics of the outbox and the uplink, and the outbox's budget report.

One set per process: an edge agent counts its uplink to the regional hub, a regional hub its
uplink to the central hub. Every label has a bounded set of values (lanes, reasons, kinds).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

OUTBOX_DISCARDED = Counter(
    "campus_outbox_discarded_events_total",
    "Outbox rows dropped without delivery",
    ["lane", "reason", "intentional"],
)
OUTBOX_DISCARDED_WINDOWS = Counter(
    "campus_outbox_discarded_windows_total",
    "Telemetry windows inside outbox rows dropped without delivery",
    ["reason"],
)
OUTBOX_MERGED_WINDOWS = Counter(
    "campus_outbox_merged_windows_total",
    "Telemetry windows combined with others by the outbox's disk budget",
)
OUTBOX_REPLACED = Counter(
    "campus_outbox_replaced_total", "Corrupt outbox files moved aside and started anew"
)
OUTBOX_DEPTH = Gauge("campus_outbox_depth", "Rows waiting in the outbox")
UPLINK_PUBLISHED = Counter(
    "campus_uplink_published_total", "Messages acknowledged by the hub broker", ["kind"]
)
UPLINK_FAILURES = Counter(
    "campus_uplink_failures_total", "Failed hub connections or publishes", ["error_type"]
)
UPLINK_CONNECTED = Gauge("campus_uplink_connected", "1 while connected to the hub broker")
UPLINK_WAITING_FOR_HUB = Gauge(
    "campus_uplink_waiting_for_hub",
    "1 while connected but the hub's session marker is not on its broker (nothing is sent)",
)


@dataclass(frozen=True, kw_only=True)
class BudgetReport:
    """The outbox's disk budget, as the heartbeat (``OutboxHealth``) and status page show it."""

    bytes: int
    budget_bytes: int
    offline_autonomy_h: float | None  # at the current append rate; None before any append
    merged_windows: int
    discarded_windows: int
    discarded: dict[str, int]  # "<lane>:<reason>" -> rows, since the outbox was created
    disk: str  # "ok" or the reason of the last refused write
