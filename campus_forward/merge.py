"""Merging telemetry windows: fewer, longer windows with the same totals (pure, no I/O).

The outbox merges its oldest telemetry when it runs over its disk budget. Adjacent windows of one
device (same device, profile and room; each starting where the previous one ended) whose starts
fall in the same ``span_s`` bucket of the wall clock (``floor(window_start / span_s)``) become one
window ``[first start, last end)``. A gap (no data, or a window already handed to the uplink)
splits a bucket, so a merged window never covers time that none of its parts covered. Per point:

* ``count`` is the sum, ``min``/``max`` the extremes, ``mean`` the count-weighted mean (clamped to
  ``[min, max]`` against float rounding), ``last`` the ``last`` of the latest window: exact.
* ``p95`` is not kept (``None``): a percentile of the whole cannot be rebuilt from the parts'
  percentiles (not even bounded: parts ``[0, 10]`` and ``[0, 10]`` each have a p95 of 9.5, the
  whole has 10), and an estimate would reach the hub looking like a measurement.
* ``samples`` (raw readings and state changes) are kept in full, concatenated in time order: a
  state change is never hidden by a merge.
* ``unit`` is the first part's.

A point missing from some windows is merged over the windows that have it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from campus_protocol.messages import PointStats, Sample, Telemetry


@dataclass(frozen=True, slots=True)
class MergedWindow:
    """A window and how many source windows it stands for (1: left as it was)."""

    window: Telemetry
    sources: int


def merge_windows(windows: Iterable[Telemetry], span_s: float) -> list[MergedWindow]:
    """Merge ``windows`` per device and ``span_s`` bucket; output in (device, start) order."""
    if span_s <= 0:
        raise ValueError(f"span_s must be positive (got {span_s})")
    buckets: dict[tuple[str, str, str, int], list[Telemetry]] = {}
    for window in windows:
        bucket = math.floor(window.window_start.timestamp() / span_s)
        key = (window.device, window.profile, window.room, bucket)
        buckets.setdefault(key, []).append(window)
    return [
        MergedWindow(_merge(run), len(run))
        for _, parts in sorted(buckets.items(), key=lambda item: item[0])
        for run in _adjacent_runs(sorted(parts, key=lambda w: w.window_start))
    ]


def _adjacent_runs(windows: list[Telemetry]) -> list[list[Telemetry]]:
    """Split time-ordered windows where one does not start at the previous one's end."""
    runs: list[list[Telemetry]] = []
    for window in windows:
        if runs and runs[-1][-1].window_end == window.window_start:
            runs[-1].append(window)
        else:
            runs.append([window])
    return runs


def merge_stats(parts: list[PointStats]) -> PointStats:
    """One point's stats over consecutive windows (``parts`` in time order)."""
    count = sum(p.count for p in parts)
    low = min(p.min for p in parts)
    high = max(p.max for p in parts)
    mean = math.fsum(p.mean * p.count for p in parts) / count
    return PointStats(
        count=count,
        min=low,
        max=high,
        mean=min(max(mean, low), high),
        last=parts[-1].last,
        unit=parts[0].unit,
    )


def _merge(parts: list[Telemetry]) -> Telemetry:
    if len(parts) == 1:
        return parts[0]
    points: dict[str, list[PointStats]] = {}
    samples: dict[str, list[Sample]] = {}
    for part in parts:
        for name, stats in part.points.items():
            points.setdefault(name, []).append(stats)
        for name, values in part.samples.items():
            samples.setdefault(name, []).extend(values)
    first = parts[0]
    return Telemetry(
        device=first.device,
        profile=first.profile,
        room=first.room,
        window_start=_utc(first.window_start),
        window_end=_utc(max(p.window_end for p in parts)),
        points={name: merge_stats(stats) for name, stats in points.items()},
        samples=samples,
    )


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
