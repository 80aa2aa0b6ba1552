"""Windowed per-device, per-point aggregates (count/min/max/mean/last) with numpy.

Windows are aligned to the wall clock: a reading taken at ``t`` belongs to the window starting
at ``floor(t / window_s) * window_s``. ``push(now)`` returns a ``Telemetry`` body for every
device that had readings in every window that has closed by ``now``; open windows stay open.
``add`` and ``push`` are never called concurrently (one event loop), so there are no locks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from campus_protocol.messages import PointStats, Telemetry
from edge_agent.health import AGGREGATE_LATE_READINGS
from edge_agent.sources.base import Reading


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    """What a Telemetry body says about its device besides the numbers."""

    profile: str
    room: str
    units: dict[str, str]


class WindowAggregator:
    """Accumulates readings per window, device and point; ``push`` closes finished windows."""

    def __init__(self, window_s: float, devices: dict[str, DeviceMeta]) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive (got {window_s})")
        self.window_s = window_s
        self.devices = devices
        self.late_readings = 0
        self.skipped_values = 0
        # window index -> device -> point -> values in arrival order
        self._windows: dict[int, dict[str, dict[str, list[float]]]] = {}
        self._first_open = -(2**62)  # windows below this index were pushed already

    def window_index(self, t: float) -> int:
        return math.floor(t / self.window_s)

    def add(self, reading: Reading) -> None:
        """Record ``reading`` in its window; readings for an already pushed window are dropped."""
        if reading.device not in self.devices:
            raise KeyError(f"reading for unconfigured device {reading.device!r}")
        index = self.window_index(reading.at)
        if index < self._first_open:
            self.late_readings += 1
            AGGREGATE_LATE_READINGS.inc()
            return
        points = self._windows.setdefault(index, {}).setdefault(reading.device, {})
        for name, value in reading.values.items():
            if not math.isfinite(value):
                self.skipped_values += 1
                continue
            points.setdefault(name, []).append(float(value))

    def push(self, now: float) -> list[Telemetry]:
        """Telemetry for every window with ``window_end <= now``, oldest first."""
        first_open = self.window_index(now)
        self._first_open = max(self._first_open, first_open)
        bodies: list[Telemetry] = []
        for index in sorted(i for i in self._windows if i < first_open):
            per_device = self._windows.pop(index)
            start = _utc(index * self.window_s)
            end = _utc((index + 1) * self.window_s)
            for device, points in sorted(per_device.items()):
                stats = {
                    name: self._stats(device, name, vals) for name, vals in points.items() if vals
                }
                if not stats:
                    continue
                meta = self.devices[device]
                bodies.append(
                    Telemetry(
                        device=device,
                        profile=meta.profile,
                        room=meta.room,
                        window_start=start,
                        window_end=end,
                        points=stats,
                    )
                )
        return bodies

    def reset(self) -> None:
        """Forget every open window (nothing is pushed)."""
        self._windows.clear()

    def open_windows(self) -> int:
        return len(self._windows)

    def _stats(self, device: str, point: str, values: list[float]) -> PointStats:
        array = np.asarray(values, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        # the float mean of equal values can land one ulp outside [min, max]: clamp it
        mean = min(max(float(array.mean()), low), high)
        return PointStats(
            count=int(array.size),
            min=low,
            max=high,
            mean=mean,
            last=float(array[-1]),
            unit=self.devices[device].units.get(point, ""),
        )


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
