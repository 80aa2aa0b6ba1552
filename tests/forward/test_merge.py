"""Merging telemetry windows keeps count, min, max, mean and last right, per device and bucket."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_forward.merge import merge_windows
from campus_protocol.messages import PointStats, Sample, Telemetry

WINDOW_S = 10


def window(device: str, index: int, values: list[float], *, p95: float | None = None) -> Telemetry:
    array = np.asarray(values)
    stats = PointStats(
        count=len(values),
        min=float(array.min()),
        max=float(array.max()),
        mean=min(max(float(array.mean()), float(array.min())), float(array.max())),
        last=values[-1],
        p95=p95,
        unit="W",
    )
    return Telemetry(
        device=device,
        profile="eastron_sdm120",
        room="lab-3",
        window_start=datetime.fromtimestamp(index * WINDOW_S, UTC),
        window_end=datetime.fromtimestamp((index + 1) * WINDOW_S, UTC),
        points={"power": stats},
    )


values = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(values, min_size=1, max_size=30))
def test_a_merged_window_has_the_stats_of_all_its_readings(parts: list[list[float]]) -> None:
    windows = [window("meter-1", i, part) for i, part in enumerate(parts)]

    (merged,) = merge_windows(windows, span_s=WINDOW_S * len(parts))

    everything = [v for part in parts for v in part]
    stats = merged.window.points["power"]
    assert merged.sources == len(parts)
    assert stats.count == len(everything)
    assert (stats.min, stats.max, stats.last) == (min(everything), max(everything), parts[-1][-1])
    assert math.isclose(stats.mean, math.fsum(everything) / len(everything), abs_tol=1e-6)
    assert merged.window.window_start == windows[0].window_start
    assert merged.window.window_end == windows[-1].window_end


def test_windows_merge_per_device_and_wall_clock_bucket_only() -> None:
    windows = [window(device, i, [float(i)]) for i in range(6) for device in ("a", "b")]

    merged = merge_windows(windows, span_s=30)

    assert [(m.window.device, m.window.window_start.timestamp(), m.sources) for m in merged] == [
        ("a", 0, 3),
        ("a", 30, 3),
        ("b", 0, 3),
        ("b", 30, 3),
    ]


def test_a_gap_splits_a_bucket_so_no_merged_window_covers_time_without_data() -> None:
    windows = [window("a", i, [float(i)]) for i in (0, 1, 3, 4, 5)]

    merged = merge_windows(windows, span_s=100)

    assert [(m.window.window_start.timestamp(), m.window.window_end.timestamp(), m.sources)
            for m in merged] == [(0, 20, 2), (30, 60, 3)]  # fmt: skip


def test_a_window_alone_in_its_bucket_is_left_as_it_was_p95_included() -> None:
    alone = window("a", 0, [1.0, 2.0], p95=1.95)

    (merged,) = merge_windows([alone], span_s=900)

    assert merged.sources == 1 and merged.window == alone


def test_merging_drops_p95_which_summaries_cannot_rebuild() -> None:
    # each part [0, 10] has p95 9.5 (linear interpolation); the whole [0, 0, 10, 10] has 10
    parts = [window("a", i, [0.0, 10.0], p95=9.5) for i in range(2)]

    (merged,) = merge_windows(parts, span_s=900)

    assert np.percentile([0, 0, 10, 10], 95) == 10
    assert merged.window.points["power"].p95 is None


def test_samples_and_points_missing_from_some_windows_are_kept() -> None:
    first = window("a", 0, [1.0]).model_copy(
        update={"samples": {"door": [Sample(at=datetime.fromtimestamp(1, UTC), value=1)]}}
    )
    second = window("a", 1, [2.0]).model_copy(
        update={
            "points": {
                "power": window("a", 1, [2.0]).points["power"],
                "energy": PointStats(count=1, min=5, max=5, mean=5, last=5),
            },
            "samples": {"door": [Sample(at=datetime.fromtimestamp(12, UTC), value=0)]},
        }
    )

    (merged,) = merge_windows([second, first], span_s=900)

    assert [s.value for s in merged.window.samples["door"]] == [1, 0]
    assert merged.window.points["energy"].count == 1
    assert merged.window.points["power"].count == 2


def test_a_merge_span_must_be_positive() -> None:
    with pytest.raises(ValueError, match="span_s"):
        merge_windows([], span_s=0)
