"""``trusted`` builds the same model that validation would, without validating."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from campus_protocol import PointStats, Telemetry
from campus_protocol.messages import trusted
from tests.protocol.strategies import telemetry


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=telemetry())
def test_a_trusted_window_equals_and_serialises_like_the_validated_one(window: Telemetry):
    points = {name: trusted(PointStats, **dict(stats)) for name, stats in window.points.items()}
    built = trusted(Telemetry, **{**dict(window), "points": points})

    assert built == window
    assert built.model_dump_json() == window.model_dump_json()
    assert built.model_fields_set == window.model_fields_set | set(Telemetry.model_fields)
