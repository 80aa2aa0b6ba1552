"""Windowed aggregates: wall-clock aligned windows, numpy stats, only closed windows pushed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_agent.aggregate import DeviceMeta, WindowAggregator
from edge_agent.sources.base import Reading

DEVICES = {
    "meter-1": DeviceMeta(profile="eastron_sdm120", room="lab-3", units={"power": "W"}),
    "meter-2": DeviceMeta(profile="eastron_sdm120", room="lab-4", units={}),
}
T0 = 1_700_000_000.0  # a multiple of 10


def reading(device: str, at: float, **values: float) -> Reading:
    return Reading(device=device, values=values, at=at)


def test_stats_are_count_min_max_mean_last_in_arrival_order() -> None:
    agg = WindowAggregator(10, DEVICES)
    for offset, power in [(1, 100.0), (3, 400.0), (5, 50.0), (9.99, 250.0)]:
        agg.add(reading("meter-1", T0 + offset, power=power))

    (body,) = agg.push(T0 + 10)

    stats = body.points["power"]
    assert (stats.count, stats.min, stats.max, stats.last) == (4, 50.0, 400.0, 250.0)
    assert stats.mean == pytest.approx(200.0)
    assert stats.unit == "W"
    assert (body.device, body.profile, body.room) == ("meter-1", "eastron_sdm120", "lab-3")


def test_windows_align_to_the_wall_clock() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.add(reading("meter-1", T0 + 7, power=1))
    agg.add(reading("meter-1", T0 + 13, power=2))

    first, second = agg.push(T0 + 20)

    assert first.window_start == datetime.fromtimestamp(T0, UTC)
    assert first.window_end == datetime.fromtimestamp(T0 + 10, UTC)
    assert second.window_start == datetime.fromtimestamp(T0 + 10, UTC)
    assert [first.points["power"].last, second.points["power"].last] == [1, 2]


def test_open_window_is_not_pushed_until_it_closes() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.add(reading("meter-1", T0 + 1, power=1))

    assert agg.push(T0 + 9.999) == []
    assert len(agg.push(T0 + 10)) == 1
    assert agg.push(T0 + 30) == [], "a window is pushed once"


def test_a_device_without_readings_in_a_window_produces_no_message() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.add(reading("meter-1", T0 + 1, power=1))
    agg.add(reading("meter-2", T0 + 11, power=1))
    agg.add(reading("meter-2", T0 + 12))  # a poll whose values were all invalid

    bodies = agg.push(T0 + 20)

    assert [(b.device, b.window_start.timestamp()) for b in bodies] == [
        ("meter-1", T0),
        ("meter-2", T0 + 10),
    ]


def test_reading_for_an_already_pushed_window_is_counted_late_and_dropped() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.push(T0 + 10)
    agg.add(reading("meter-1", T0 + 5, power=1))

    assert agg.late_readings == 1
    assert agg.push(T0 + 100) == []


def test_non_finite_values_are_skipped() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.add(reading("meter-1", T0, power=float("nan"), energy=float("inf"), pf=0.9))

    (body,) = agg.push(T0 + 10)

    assert list(body.points) == ["pf"]
    assert agg.skipped_values == 2


def test_mean_of_equal_values_stays_within_min_and_max() -> None:
    agg = WindowAggregator(1, DEVICES)
    for i in range(3):
        agg.add(reading("meter-1", T0 + i / 10, power=0.1))

    (body,) = agg.push(T0 + 1)

    assert body.points["power"].mean == 0.1


def test_reset_drops_open_windows() -> None:
    agg = WindowAggregator(10, DEVICES)
    agg.add(reading("meter-1", T0, power=1))
    agg.reset()

    assert agg.push(T0 + 10) == []
