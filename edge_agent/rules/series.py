"""Rolling history of one point: the statistics rules read (last, mean/min/max over a duration,
rate of change, time since the value last changed)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: a rolling statistic is trusted once its samples span this share of its duration
MIN_COVERAGE = 0.5


@dataclass
class PointSeries:
    """Samples ``(t, value)`` of one point kept for ``keep_s`` seconds (the longest any rule of
    the device needs), plus when the value last changed."""

    keep_s: float = 0.0
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    last_change_at: float | None = None

    def add(self, at: float, value: float) -> None:
        if self.samples and at < self.samples[-1][0]:
            return  # a clock step backwards: keep the series ordered
        if not self.samples or value != self.samples[-1][1]:
            self.last_change_at = at
        self.samples.append((at, value))
        horizon = at - self.keep_s
        while len(self.samples) > 1 and self.samples[0][0] < horizon:
            self.samples.popleft()

    @property
    def last(self) -> float | None:
        return self.samples[-1][1] if self.samples else None

    @property
    def last_at(self) -> float | None:
        return self.samples[-1][0] if self.samples else None

    def window(self, over_s: float, now: float) -> list[tuple[float, float]] | None:
        """Samples within ``over_s`` of ``now``; None until they cover ``MIN_COVERAGE`` of it."""
        if not self.samples:
            return None
        start = now - over_s
        inside = [s for s in self.samples if s[0] >= start]
        if not inside or self.samples[0][0] > start + over_s * (1 - MIN_COVERAGE):
            return None
        return inside

    def stat(self, name: str, over_s: float, now: float) -> float | None:
        """``last`` or ``mean`` / ``min`` / ``max`` over ``over_s`` (``over_s == 0``: last)."""
        if over_s <= 0 or name == "last":
            return self.last
        inside = self.window(over_s, now)
        if inside is None:
            return None
        values = [v for _, v in inside]
        if name == "mean":
            return sum(values) / len(values)
        return min(values) if name == "min" else max(values)

    def rate_per_min(self, over_s: float, now: float) -> float | None:
        """Change per minute between the oldest and newest sample within ``over_s``."""
        inside = self.window(over_s, now)
        if inside is None or len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (t0, v0), (t1, v1) = inside[0], inside[-1]
        return (v1 - v0) / (t1 - t0) * 60.0

    def unchanged_for(self, now: float) -> float | None:
        return None if self.last_change_at is None else max(0.0, now - self.last_change_at)

    def to_state(self) -> dict[str, object]:
        return {"samples": list(self.samples), "last_change_at": self.last_change_at}

    @classmethod
    def from_state(cls, keep_s: float, state: dict[str, object]) -> PointSeries:
        raw = state.get("samples")
        samples = deque((float(t), float(v)) for t, v in (raw if isinstance(raw, list) else []))
        changed = state.get("last_change_at")
        return cls(
            keep_s=keep_s,
            samples=samples,
            last_change_at=float(changed) if isinstance(changed, int | float) else None,
        )
