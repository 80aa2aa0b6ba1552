"""Prometheus counters and gauges of the agent, and the status-page snapshot.

Metric names follow ``campus_<stage>_<name>_total``; every label has a bounded set of values
(protocols, error types, message kinds, lanes, reasons), never a device id or a free-form message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from edge_agent.sources.base import DeviceState

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
class DeviceStatusView:
    """One row of the status page."""

    device: str
    profile: str
    room: str
    room_name: str
    protocol: str
    status: str
    last_ok_at: float | None
    consecutive_failures: int
    last_error: str
    failing_for_s: float | None
    invalid_values: int
    values: dict[str, float] = field(default_factory=dict)  # the newest reading
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        state: DeviceState,
        now: float,
        *,
        values: Mapping[str, float] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> DeviceStatusView:
        return cls(
            device=state.device,
            profile=state.profile,
            room=state.room,
            room_name=state.room_name,
            protocol=state.protocol,
            status=state.status.value,
            last_ok_at=state.last_ok_at,
            consecutive_failures=state.consecutive_failures,
            last_error=state.last_error,
            failing_for_s=state.failing_for_s(now),
            invalid_values=state.invalid_values,
            values=dict(values or {}),
            units=dict(units or {}),
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


@dataclass(frozen=True, kw_only=True)
class StatusSnapshot:
    """What the status page and ``campus agent`` commands show about a running agent."""

    gateway: str
    started_at: float
    taken_at: float = field(default_factory=time.time)
    devices: list[DeviceStatusView]
    uplink_connected: bool
    uplink_last_error: str
    outbox_depth: int
    outbox: BudgetReport
    windows_enqueued: int
    messages_published: dict[str, int]
    messages_discarded: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)
