"""Packing telemetry windows into batch messages under a size bound (pure, no I/O).

Fewer, larger messages are cheaper for the outbox, the broker, the uplink and the hub: the agent
packs each period's windows, and the outbox packs the windows its disk budget merged.
"""

from __future__ import annotations

from collections.abc import Sequence

from campus_protocol.messages import MAX_BATCH_WINDOWS, Telemetry, TelemetryBatch, trusted

#: a batch body stays under this many bytes (an upper bound), within the 256 KiB message bound
BATCH_BYTES = 192 * 1024


def estimated_bytes(window: Telemetry) -> int:
    """An upper bound of the JSON size of ``window``, without serialising it: the longest a
    timestamp (32), a float (24), a count (19) and an escaped character (6) can be."""
    size = 200 + len(window.device) + len(window.profile) + len(window.room)
    for name, stats in window.points.items():
        size += 200 + len(name) + 6 * len(stats.unit)
    for name, samples in window.samples.items():
        size += 8 + len(name) + 85 * len(samples)
    return size


def pack_windows(
    windows: Sequence[Telemetry], *, max_bytes: int = BATCH_BYTES
) -> list[Telemetry | TelemetryBatch]:
    """Group ``windows`` (in order) into batch bodies of at most ``max_bytes`` (estimated) and
    ``MAX_BATCH_WINDOWS`` windows; a lone window that fills a batch by itself goes alone."""
    bodies: list[Telemetry | TelemetryBatch] = []
    chunk: list[Telemetry] = []
    size = 0
    for window in windows:
        window_size = estimated_bytes(window)
        if chunk and (size + window_size > max_bytes or len(chunk) >= MAX_BATCH_WINDOWS):
            bodies.append(_body(chunk))
            chunk, size = [], 0
        chunk.append(window)
        size += window_size
    if chunk:
        bodies.append(_body(chunk))
    return bodies


def _body(chunk: list[Telemetry]) -> Telemetry | TelemetryBatch:
    return chunk[0] if len(chunk) == 1 else trusted(TelemetryBatch, windows=chunk)
