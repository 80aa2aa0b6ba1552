"""Prometheus counters and gauges of the agent (served on the status page's ``/metrics``).

Metric names follow ``campus_<stage>_<name>_total``; every label has a bounded set of values
(protocols, error types, message kinds, lanes, reasons), never a device id or a free-form message.
The outbox's and uplink's own metrics live with them, in ``campus_forward.metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter

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
