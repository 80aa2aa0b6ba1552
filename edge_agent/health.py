"""Prometheus counters and gauges of the agent (served on the status page's ``/metrics``).

Metric names follow ``campus_<stage>_<name>_total``; every label has a bounded set of values
(protocols, error types, message kinds, lanes, reasons), never a device id or a free-form message.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

SOURCE_ERRORS = Counter(
    "campus_source_errors_total",
    "Failed device polls or unusable device messages",
    ["protocol", "error_type"],
)
SOURCE_INVALID_VALUES = Counter(
    "campus_source_invalid_values_total",
    "Device values skipped because they were a sentinel or out of range",
    ["protocol"],
)
SOURCE_WRITES = Counter(
    "campus_source_writes_total",
    "Device writes by outcome (verified, mismatch, unverified, rejected, failed)",
    ["protocol", "outcome"],
)
SOURCE_READINGS = Counter(
    "campus_source_readings_total", "Successful device polls or messages", ["protocol"]
)
AGGREGATE_LATE_READINGS = Counter(
    "campus_aggregate_late_readings_total",
    "Readings dropped because their window had already been published",
)
WINDOWS_ENQUEUED = Counter(
    "campus_aggregate_windows_enqueued_total", "Telemetry windows written to the outbox"
)
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
