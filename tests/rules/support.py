"""A small profile and helpers to drive the rule engine with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from device_profiles.schema import Profile
from edge_agent.rules import Firing, RuleDevice, RuleEngine, SchoolCalendar
from edge_agent.rules.config import RuleOverride
from edge_agent.rules.store import RuleStore
from edge_agent.sources.base import Reading

#: Monday 2026-11-23 in UTC (the tests' calendar is in UTC)
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: float = 0.0, *, day: int = 0) -> float:
    """UNIX time of ``hour:minute:second`` on MONDAY + ``day`` days."""
    return MONDAY.timestamp() + day * 86400 + hour * 3600 + minute * 60 + second


def sensor_profile(*rules: dict[str, Any]) -> Profile:
    return Profile.model_validate(
        {
            "id": "test_sensor",
            "name": "Test sensor",
            "domain": "safety",
            "protocol": "modbus",
            "modbus": {
                "points": [
                    {"name": "gas", "address": 0, "type": "uint16"},
                    {"name": "co2", "address": 1, "type": "uint16"},
                    {"name": "door", "address": 2, "type": "uint16"},
                ]
            },
            "alerts": [
                {"severity": "II", "standard": "test clause", "where": "edge", **rule}
                for rule in rules
            ],
        }
    )


def engine(
    *rules: dict[str, Any],
    devices: tuple[str, ...] = ("dev-1",),
    source: str = "modbus:10.0.0.9:502",
    calendar: SchoolCalendar | None = None,
    overrides: list[dict[str, Any]] | None = None,
    store: RuleStore | None = None,
) -> RuleEngine:
    profile = sensor_profile(*rules)
    return RuleEngine(
        [RuleDevice(device=d, room="lab-1", profile=profile, source=source) for d in devices],
        calendar=calendar or SchoolCalendar(timezone="UTC"),
        overrides=[RuleOverride.model_validate(o) for o in overrides or []],
        store=store,
    )


def feed(rules: RuleEngine, t: float, device: str = "dev-1", **values: float) -> list[Firing]:
    return rules.on_reading(Reading(device=device, values=dict(values), at=t))


def summary(firings: list[Firing]) -> list[tuple[str, str, str, int]]:
    """(device, rule, state, count) of each firing, flapping marked in the state."""
    return [
        (
            f.event.device,
            f.event.rule,
            "flapping" if f.event.flapping else f.event.state.value,
            f.event.count,
        )
        for f in firings
    ]
