"""The edge rule engine, driven with explicit times: each condition kind, delays, hysteresis,
repeats, flapping, offline folding, the calendar, and state kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.rules import RuleConfigError, RuleStore, SchoolCalendar
from edge_agent.rules.setup import check_rules
from edge_agent.settings import AgentSettings
from tests.rules.support import at, engine, feed, sensor_profile, summary

GAS_II = {"id": "gas_high", "point": "gas", "op": ">=", "threshold": 25, "hysteresis": 5}


def test_threshold_raises_on_the_reading_that_crosses_it_and_clears_past_the_hysteresis() -> None:
    rules = engine(GAS_II)
    assert feed(rules, at(9), gas=10) == []
    raised = feed(rules, at(9, 0, 1), gas=26)
    assert summary(raised) == [("dev-1", "gas_high", "raised", 1)]
    assert raised[0].event.value == 26 and raised[0].event.threshold == 25
    assert feed(rules, at(9, 0, 2), gas=22) == []  # inside the hysteresis band: still raised
    assert summary(feed(rules, at(9, 0, 3), gas=19.9)) == [("dev-1", "gas_high", "cleared", 1)]


def test_on_delay_holds_the_raise_and_a_dip_restarts_it() -> None:
    rules = engine({"id": "hot", "point": "co2", "op": ">", "threshold": 8, "for_s": 900})
    assert feed(rules, at(10), co2=9) == []
    assert feed(rules, at(10, 10), co2=9) == []
    assert feed(rules, at(10, 11), co2=7) == []  # dipped: the 15 minutes start again
    assert feed(rules, at(10, 12), co2=9) == []
    assert rules.tick({}, now=at(10, 26, 59)) == []
    assert summary(rules.tick({}, now=at(10, 27))) == [("dev-1", "hot", "raised", 1)]


def test_off_delay_holds_the_clear_and_a_comeback_counts_as_a_repeat_not_a_new_event() -> None:
    rules = engine({**GAS_II, "hysteresis": 0, "clear_for_s": 60})
    assert summary(feed(rules, at(9), gas=30)) == [("dev-1", "gas_high", "raised", 1)]
    assert feed(rules, at(9, 0, 10), gas=10) == []  # clearing, held for 60 s
    repeat = feed(rules, at(9, 1, 30), gas=31)
    assert summary(repeat) == [("dev-1", "gas_high", "raised", 2)]
    assert feed(rules, at(9, 1, 40), gas=10) == []
    assert feed(rules, at(9, 1, 50), gas=30) == []  # repeat counted, reported at most once a minute
    assert feed(rules, at(9, 2), gas=10) == []
    assert summary(rules.tick({}, now=at(9, 3))) == [("dev-1", "gas_high", "cleared", 3)]


def test_rolling_mean_over_an_hour_not_the_last_reading() -> None:
    rules = engine(
        {
            "id": "co2_mean",
            "point": "co2",
            "op": ">",
            "threshold": 1000,
            "stat": "mean",
            "over_s": 3600,
        }
    )
    firings = []
    for minute in range(0, 60, 5):  # 800 ppm for the first half hour, 1200 after
        firings += feed(rules, at(9, minute), co2=800 if minute < 30 else 1200)
    assert firings == []  # every reading above 1000 since 9:30, but the hour mean is not
    firings = feed(rules, at(10, 0), co2=1200)
    assert summary(firings) == [("dev-1", "co2_mean", "raised", 1)]
    assert firings[0].event.value == pytest.approx((800 * 6 + 1200 * 7) / 13)


def test_a_spike_does_not_move_an_hour_mean() -> None:
    rules = engine(
        {
            "id": "co2_mean",
            "point": "co2",
            "op": ">",
            "threshold": 1000,
            "stat": "mean",
            "over_s": 3600,
        }
    )
    for minute in range(0, 60, 5):
        feed(rules, at(9, minute), co2=800)
    assert feed(rules, at(10, 0), co2=2000) == []  # one reading twice the limit


def test_rate_of_change_per_minute() -> None:
    rules = engine(
        {
            "id": "warming",
            "kind": "rate",
            "point": "co2",
            "op": ">",
            "threshold": 0.5,
            "over_s": 600,
        }
    )
    assert feed(rules, at(9), co2=2.0) == []
    assert feed(rules, at(9, 5), co2=3.0) == []  # 0.2 per minute
    assert summary(feed(rules, at(9, 8), co2=7.0)) == [("dev-1", "warming", "raised", 1)]


def test_stale_value_raises_when_a_point_stops_changing() -> None:
    rules = engine({"id": "stuck", "kind": "stale", "point": "gas", "stale_s": 300})
    feed(rules, at(9), gas=3)
    feed(rules, at(9, 2), gas=4)
    feed(rules, at(9, 6), gas=4)
    assert feed(rules, at(9, 6, 59), gas=4) == []
    assert summary(feed(rules, at(9, 7), gas=4)) == [("dev-1", "stuck", "raised", 1)]
    assert summary(feed(rules, at(9, 8), gas=5)) == [("dev-1", "stuck", "cleared", 1)]


def test_composite_all_needs_every_part_and_any_one_of_them() -> None:
    both = {
        "id": "both",
        "kind": "all",
        "conditions": [
            {"point": "gas", "op": ">", "threshold": 10},
            {"point": "door", "op": "==", "threshold": 1},
        ],
    }
    either = {
        "id": "either",
        "kind": "any",
        "conditions": [
            {"point": "gas", "op": ">", "threshold": 10},
            {"point": "door", "op": "==", "threshold": 1},
        ],
    }
    rules = engine(both, either)
    assert summary(feed(rules, at(9), gas=20, door=0)) == [("dev-1", "either", "raised", 1)]
    assert summary(feed(rules, at(9, 1), gas=20, door=1)) == [("dev-1", "both", "raised", 1)]


def test_flapping_condition_becomes_one_flapping_event_then_clears_when_quiet() -> None:
    rules = engine({**GAS_II, "hysteresis": 0, "flapping": {"raises": 3, "window_s": 600}})
    firings = []
    for minute in range(10):  # up and down every 30 s for 10 minutes
        firings += feed(rules, at(9, minute), gas=30)
        firings += feed(rules, at(9, minute, 30), gas=0)
    assert summary(firings) == [
        ("dev-1", "gas_high", "raised", 1),
        ("dev-1", "gas_high", "cleared", 1),
        ("dev-1", "gas_high", "raised", 1),
        ("dev-1", "gas_high", "cleared", 1),
        ("dev-1", "gas_high", "flapping", 3),
    ]
    assert rules.tick({}, now=at(9, 18, 59)) == []  # last comeback 9:09: not quiet for 10 min
    assert summary(rules.tick({}, now=at(9, 19))) == [("dev-1", "gas_high", "cleared", 10)]


def test_offline_rule_with_on_delay() -> None:
    rules = engine({"id": "offline", "kind": "offline", "severity": "III", "for_s": 60})
    feed(rules, at(9), gas=1)
    assert rules.tick({"dev-1": False}, now=at(9, 0, 10)) == []
    assert summary(rules.tick({"dev-1": False}, now=at(9, 1, 10))) == [
        ("dev-1", "offline", "raised", 1)
    ]
    assert summary(feed(rules, at(9, 2), gas=1)) == [("dev-1", "offline", "cleared", 1)]


def test_a_whole_source_down_folds_its_devices_offline_events_into_one() -> None:
    rules = engine(
        {"id": "offline", "kind": "offline", "severity": "III", "for_s": 30},
        devices=("dev-1", "dev-2", "dev-3"),
    )
    down = dict.fromkeys(("dev-1", "dev-2", "dev-3"), False)
    assert rules.tick(down, now=at(9)) == []
    firings = rules.tick(down, now=at(9, 1))
    assert summary(firings) == [("modbus:10.0.0.9:502", "source_offline", "raised", 1)]
    assert firings[0].event.devices == ["dev-1", "dev-2", "dev-3"]
    # the converter comes back but dev-3 stays dead: the source clears, dev-3 raises on its own
    firings = rules.tick({"dev-1": True, "dev-2": True, "dev-3": False}, now=at(9, 2))
    assert summary(firings) == [("modbus:10.0.0.9:502", "source_offline", "cleared", 1)]
    assert rules.tick({"dev-3": False}, now=at(9, 2, 20)) == []
    assert summary(rules.tick({"dev-3": False}, now=at(9, 2, 31))) == [
        ("dev-3", "offline", "raised", 1)
    ]


def test_lesson_only_rule_is_quiet_outside_lessons_and_clears_when_the_lesson_ends() -> None:
    rules = engine({"id": "dark", "point": "co2", "op": "<", "threshold": 300, "when": "lesson"})
    assert feed(rules, at(7, 50), co2=100) == []  # before the first lesson
    assert summary(feed(rules, at(8, 10), co2=100)) == [("dev-1", "dark", "raised", 1)]
    assert summary(rules.tick({}, now=at(8, 45))) == [("dev-1", "dark", "cleared", 1)]
    assert feed(rules, at(8, 10, day=5), co2=100) == []  # Saturday


def test_calendar_holidays_make_up_days_and_named_windows() -> None:
    calendar = SchoolCalendar(
        timezone="UTC",
        holidays=["2026-11-24..2026-11-25"],
        workdays=["2026-11-28"],
        windows={"store": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]},
    )
    assert calendar.holds("lesson", at(8, 10))
    assert not calendar.holds("lesson", at(8, 10, day=1))  # holiday
    assert calendar.holds("holiday", at(12, day=2))
    assert calendar.holds("lesson", at(8, 10, day=5))  # make-up Saturday
    assert calendar.holds("after_hours", at(22))
    assert calendar.holds("window:store", at(8, 30))
    assert calendar.holds("not window:store", at(9, 30))


def test_door_outside_an_authorised_window() -> None:
    calendar = SchoolCalendar(
        timezone="UTC", windows={"store": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]}
    )
    rules = engine(
        {"id": "door", "point": "door", "op": "==", "threshold": 1, "when": "not window:store"},
        calendar=calendar,
    )
    assert feed(rules, at(8, 30), door=1) == []
    assert summary(feed(rules, at(9, 30), door=1)) == [("dev-1", "door", "raised", 1)]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    store = RuleStore(tmp_path / "rules.sqlite3")
    rules = engine({**GAS_II, "for_s": 0}, store=store)
    assert summary(feed(rules, at(9), gas=30)) == [("dev-1", "gas_high", "raised", 1)]
    rules.save()
    store.close()

    store = RuleStore(tmp_path / "rules.sqlite3")
    again = engine({**GAS_II, "for_s": 0}, store=store)
    assert feed(again, at(9, 1), gas=31) == []  # still the same active event: not raised twice
    assert [(d, r, s.phase.value) for d, r, s in again.active()] == [
        ("dev-1", "gas_high", "active")
    ]
    assert summary(feed(again, at(9, 2), gas=0)) == [("dev-1", "gas_high", "cleared", 1)]
    store.close()


def test_site_overrides_change_disable_and_add_rules() -> None:
    rules = engine(
        GAS_II,
        overrides=[
            {"match": {"room": "lab-1"}, "rule": {"id": "gas_high", "threshold": 10}},
            {
                "match": {"device": "dev-1"},
                "rule": {
                    "id": "door_open",
                    "point": "door",
                    "op": "==",
                    "threshold": 1,
                    "severity": "IV",
                    "standard": "none: site rule",
                },
            },
        ],
    )
    assert [(r.id, r.threshold) for r in rules.rules_of("dev-1")] == [
        ("gas_high", 10),
        ("door_open", 1),
    ]
    disabled = engine(GAS_II, overrides=[{"rule": {"id": "gas_high", "enabled": False}}])
    assert disabled.rules_of("dev-1") == []


def test_a_bad_override_names_the_field() -> None:
    with pytest.raises(RuleConfigError, match=r"rules\[0\]\.rule\.point: .*no point 'nope'"):
        engine(GAS_II, overrides=[{"rule": {"id": "gas_high", "point": "nope"}}])


def test_an_override_that_concerns_no_device_is_reported_at_start() -> None:
    settings = AgentSettings.model_validate(
        {
            "gateway": {"id": "gw-1", "site": {"city_id": "c", "district_id": "d",
                                               "school_id": "s"}},
            "development": True,
            "devices": [{"id": "dev-1", "profile": "test_sensor", "room": "lab-1",
                         "modbus": {"host": "127.0.0.1"}}],
            "rules": [
                {"rule": {"id": "gas_hihg", "threshold": 10}},  # a typo
                {"match": {"device": "dev-1"}, "rule": {"id": "gas_high", "threshold": 10}},
            ],
        }
    )  # fmt: skip
    assert check_rules(settings, {"test_sensor": sensor_profile(GAS_II)}) == [
        "rules[0].rule.id: no matching device has a rule 'gas_hihg' (a new rule needs severity"
        " and standard)"
    ]
