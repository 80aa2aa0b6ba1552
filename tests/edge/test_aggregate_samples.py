"""p95, change-of-value and raw samples, and the packing of windows into batch messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings

from campus_forward.packing import estimated_bytes, pack_windows
from campus_protocol import Envelope, Telemetry, TelemetryBatch, encode
from campus_protocol.messages import MAX_BATCH_WINDOWS
from edge_agent.aggregate import DeviceMeta, WindowAggregator
from edge_agent.sources.base import Reading
from tests.protocol.strategies import telemetry

RELAY = DeviceMeta(
    profile="relay_board",
    room="r101",
    units={},
    changes=frozenset({"relay"}),
    raw=frozenset({"current"}),
)
T0 = 1_700_000_000.0  # a multiple of 10


def test_p95_is_the_linear_interpolated_95th_percentile_of_the_window() -> None:
    agg = WindowAggregator(10, {"m": DeviceMeta(profile="p", room="r", units={})})
    for i in range(1, 21):
        agg.add(Reading("m", {"power": float(i)}, T0 + i * 0.4))

    (body,) = agg.push(T0 + 10)

    assert body.points["power"].p95 == pytest.approx(19.05)
    assert body.points["power"].count == 20


def test_a_relay_that_flips_and_flips_back_inside_one_window_shows_both_changes() -> None:
    agg = WindowAggregator(10, {"board": RELAY})
    for offset, relay in [(1, 0), (2, 0), (3, 1), (4, 1), (5, 0), (12, 0), (13, 1)]:
        agg.add(Reading("board", {"relay": relay, "current": 0.5}, T0 + offset))

    first, second = agg.push(T0 + 20)

    changes = [(s.at.timestamp() - T0, s.value) for s in first.samples["relay"]]
    assert changes == [(1, 0), (3, 1), (5, 0)]  # the first value, then each change
    assert first.points["relay"].last == 0  # the window's last value alone hides the pulse
    assert [(s.at.timestamp() - T0, s.value) for s in second.samples["relay"]] == [(13, 1)]


def test_raw_points_pass_every_reading_through_with_its_acquisition_time() -> None:
    agg = WindowAggregator(10, {"board": RELAY})
    for offset, current in [(1.25, 0.5), (2.5, 0.75), (7.75, 1.0)]:
        agg.add(Reading("board", {"relay": 0, "current": current}, T0 + offset))

    (body,) = agg.push(T0 + 10)

    assert [(s.at, s.value) for s in body.samples["current"]] == [
        (datetime.fromtimestamp(T0 + o, UTC), v) for o, v in [(1.25, 0.5), (2.5, 0.75), (7.75, 1.0)]
    ]


def test_pushed_windows_are_valid_telemetry_on_the_wire() -> None:
    agg = WindowAggregator(10, {"board": RELAY})
    agg.add(Reading("board", {"relay": 1, "current": 2.0, "temp": float("nan")}, T0 + 1))
    agg.add(Reading("board", {"relay": 1, "current": 3.0, "temp": 20.0}, T0 + 2))

    (body,) = agg.push(T0 + 10)

    assert Telemetry.model_validate(body.model_dump()) == body
    assert body.points["temp"].count == 1 and agg.skipped_values == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=telemetry())
def test_estimated_size_is_an_upper_bound_of_the_json(window: Telemetry) -> None:
    assert len(window.model_dump_json().encode()) <= estimated_bytes(window)


def test_many_device_windows_pack_into_few_batches_that_each_fit_a_message() -> None:
    agg = WindowAggregator(1, {f"dev-{d}": DeviceMeta("bench", "hall", {}) for d in range(2000)})
    for d in range(2000):
        agg.add(Reading(f"dev-{d}", {f"v{i}": d + i / 10 for i in range(8)}, T0 + 0.5))
    windows = agg.push(T0 + 1)

    bodies = pack_windows(windows)

    assert all(isinstance(b, TelemetryBatch) for b in bodies)
    assert sum(len(b.windows) for b in bodies) == 2000  # type: ignore[union-attr]
    assert len(bodies) <= 25
    for seq, body in enumerate(bodies):
        encode(Envelope.wrap(node="gw-1", epoch="e", seq=seq, body=body))  # within the bound
        assert len(body.windows) <= MAX_BATCH_WINDOWS  # type: ignore[union-attr]


def test_a_single_window_is_sent_as_plain_telemetry() -> None:
    agg = WindowAggregator(10, {"board": RELAY})
    agg.add(Reading("board", {"relay": 1, "current": 1.0}, T0 + 1))

    assert [type(b) for b in pack_windows(agg.push(T0 + 10))] == [Telemetry]
