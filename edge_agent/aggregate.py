"""Windowed per-device, per-point aggregates (count/min/max/mean/last/p95) with numpy, plus
change-of-value and raw samples, and the packing of windows into batch messages.

Windows are aligned to the wall clock: a reading taken at ``t`` (its acquisition time) belongs to
the window starting at ``floor(t / window_s) * window_s``. ``push(now)`` returns a ``Telemetry``
body for every device that had readings in every window that has closed by ``now``; open windows
stay open. ``add`` and ``push`` are never called concurrently (one event loop), so no locks.

``add`` only files the reading (one list append per device); the statistics of a device's window
are computed by ``push`` for all its points at once, from one ``(readings x points)`` array.

Besides the statistics, a window carries ``samples`` for two kinds of point (the profile's
``report``): ``change`` points (relay on/off, recording started) give one sample per change of
value, with the reading's acquisition time, compared across windows too, so a state that flips
and flips back inside one window is still seen; ``raw`` points pass every reading through.

Closed windows go into batch messages through ``campus_forward.packing.pack_windows``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from campus_protocol.messages import (
    PointStats,
    Sample,
    Telemetry,
    trusted,
)
from device_profiles.schema import Profile, ReportMode
from edge_agent.health import AGGREGATE_LATE_READINGS
from edge_agent.sources.base import Reading


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    """What a Telemetry body says about its device besides the numbers, and which points report
    changes (``changes``) or every reading (``raw``) as samples."""

    profile: str
    room: str
    units: dict[str, str]
    changes: frozenset[str] = frozenset()
    raw: frozenset[str] = frozenset()


def device_meta(profile_id: str, room: str, profile: Profile) -> DeviceMeta:
    """The window metadata of a device of ``profile`` in ``room``."""
    return DeviceMeta(
        profile=profile_id,
        room=room,
        units={p: profile.unit_of(p) for p in profile.point_names},
        changes=profile.points_reporting(ReportMode.CHANGE),
        raw=profile.points_reporting(ReportMode.RAW),
    )


@dataclass(slots=True)
class _DeviceWindow:
    readings: list[dict[str, float]] = field(default_factory=list)
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


class WindowAggregator:
    """Accumulates readings per window and device; ``push`` closes finished windows."""

    def __init__(self, window_s: float, devices: dict[str, DeviceMeta]) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive (got {window_s})")
        self.window_s = window_s
        self.devices = devices
        self.late_readings = 0
        self.skipped_values = 0
        self._windows: dict[int, dict[str, _DeviceWindow]] = {}
        self._first_open = -(2**62)  # windows below this index were pushed already
        self._states: dict[tuple[str, str], float] = {}  # last value of each change point

    def window_index(self, t: float) -> int:
        return math.floor(t / self.window_s)

    def add(self, reading: Reading) -> None:
        """File ``reading`` in its window; readings for an already pushed window are dropped."""
        meta = self.devices.get(reading.device)
        if meta is None:
            raise KeyError(f"reading for unconfigured device {reading.device!r}")
        index = self.window_index(reading.at)
        if index < self._first_open:
            self.late_readings += 1
            AGGREGATE_LATE_READINGS.inc()
            return
        window = self._windows.get(index)
        if window is None:
            window = self._windows[index] = {}
        device = window.get(reading.device)
        if device is None:
            device = window[reading.device] = _DeviceWindow()
        device.readings.append(reading.values)
        if meta.changes or meta.raw:
            self._sample(reading, meta, device)

    def _sample(self, reading: Reading, meta: DeviceMeta, device: _DeviceWindow) -> None:
        for name in meta.raw:
            value = reading.values.get(name)
            if value is not None and math.isfinite(value):
                device.samples.setdefault(name, []).append((reading.at, value))
        for name in meta.changes:
            value = reading.values.get(name)
            if value is None or not math.isfinite(value):
                continue
            key = (reading.device, name)
            if self._states.get(key) != value:
                self._states[key] = value
                device.samples.setdefault(name, []).append((reading.at, value))

    def push(self, now: float) -> list[Telemetry]:
        """Telemetry for every window with ``window_end <= now``, oldest first."""
        first_open = self.window_index(now)
        self._first_open = max(self._first_open, first_open)
        bodies: list[Telemetry] = []
        for index in sorted(i for i in self._windows if i < first_open):
            per_device = self._windows.pop(index)
            start = _utc(index * self.window_s)
            end = _utc((index + 1) * self.window_s)
            for device, window in sorted(per_device.items()):
                meta = self.devices[device]
                stats = self._stats(meta, window.readings)
                if not stats:
                    continue
                # Values computed here satisfy the model's rules (min <= mean, last, p95 <= max):
                # built without re-validation, the hot path of a gateway with many devices.
                bodies.append(
                    trusted(
                        Telemetry,
                        device=device,
                        profile=meta.profile,
                        room=meta.room,
                        window_start=start,
                        window_end=end,
                        points=stats,
                        samples={
                            name: [trusted(Sample, at=_utc(at), value=v) for at, v in s]
                            for name, s in window.samples.items()
                        },
                    )
                )
        return bodies

    def reset(self) -> None:
        """Forget every open window (nothing is pushed)."""
        self._windows.clear()

    def open_windows(self) -> int:
        return len(self._windows)

    def _stats(self, meta: DeviceMeta, readings: list[dict[str, float]]) -> dict[str, PointStats]:
        names = list(readings[0])
        if any(r.keys() != readings[0].keys() for r in readings[1:]):
            names = list(dict.fromkeys(name for r in readings for name in r))
        values = np.array([[r.get(n, math.nan) for n in names] for r in readings], dtype=float)
        finite = np.isfinite(values)
        if not finite.all():
            missing = sum(len(names) - len(r) for r in readings)  # NaN fill, not a bad value
            self.skipped_values += int((~finite).sum()) - missing
            return self._stats_with_gaps(meta, names, values, finite)
        return self._columns(meta, names, values)

    def _columns(
        self, meta: DeviceMeta, names: Sequence[str], values: np.ndarray
    ) -> dict[str, PointStats]:
        """Stats of every column of a ``(readings x points)`` array of finite values."""
        count = values.shape[0]
        last = values[-1]
        if count == 1:
            low = high = mean = p95 = last
        else:
            low, high = values.min(axis=0), values.max(axis=0)
            # the float mean of equal values can land one ulp outside [min, max]: clamp it
            mean = np.clip(values.mean(axis=0), low, high)
            p95 = np.percentile(values, 95, axis=0)
        units = meta.units
        return {
            name: trusted(
                PointStats,
                count=count,
                min=lo,
                max=hi,
                mean=mu,
                last=la,
                p95=p,
                unit=units.get(name, ""),
            )
            for name, lo, hi, mu, la, p in zip(
                names,
                low.tolist(),
                high.tolist(),
                mean.tolist(),
                last.tolist(),
                p95.tolist(),
                strict=True,
            )
        }

    def _stats_with_gaps(
        self, meta: DeviceMeta, names: Sequence[str], values: np.ndarray, finite: np.ndarray
    ) -> dict[str, PointStats]:
        """Column by column, over the finite values only (missing or non-finite are skipped)."""
        stats: dict[str, PointStats] = {}
        for column, name in enumerate(names):
            kept = values[finite[:, column], column]
            if kept.size:
                stats.update(self._columns(meta, [name], kept[:, None]))
        return stats


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
