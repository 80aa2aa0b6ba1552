"""The school signals have the shapes a school day has, and are reproducible from their seed."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import pytest

from simulators import signals
from simulators.signals import LESSONS, SimClock

MONDAY = date(2025, 3, 3)
SATURDAY = date(2025, 3, 8)
SEEDS = range(8)


def at(day: date, hhmm: str) -> datetime:
    hour, minute = hhmm.split(":")
    return datetime.combine(day, time(int(hour), int(minute)))


def minutes(day: date, start: str = "00:00", end: str = "23:59", step: int = 1) -> list[datetime]:
    t, stop = at(day, start), at(day, end)
    out = []
    while t <= stop:
        out.append(t)
        t += timedelta(minutes=step)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_co2_is_higher_at_the_end_of_every_lesson_than_at_its_start(seed: int) -> None:
    for lesson in LESSONS:
        start = datetime.combine(MONDAY, lesson.start) + timedelta(minutes=1)
        end = datetime.combine(MONDAY, lesson.end) - timedelta(minutes=1)
        assert signals.co2_ppm(end, seed) > signals.co2_ppm(start, seed) + 300


@pytest.mark.parametrize("seed", SEEDS)
def test_co2_decays_towards_outdoor_level_between_lessons_and_after_school(seed: int) -> None:
    lesson_end = signals.co2_ppm(at(MONDAY, "09:39"), seed)
    break_end = signals.co2_ppm(at(MONDAY, "09:59"), seed)
    assert break_end < lesson_end - 200
    assert signals.co2_ppm(at(MONDAY, "21:00"), seed) < 480


def test_co2_stays_near_outdoor_level_at_weekends() -> None:
    values = [signals.co2_ppm(t, 3) for t in minutes(SATURDAY, step=15)]
    assert max(values) < 480
    assert min(values) > 380


def test_desk_lux_is_higher_with_lights_on_and_follows_daylight() -> None:
    for t in minutes(MONDAY, "07:30", "17:00", step=30):
        assert signals.desk_lux(t, 1.0, 5) > signals.desk_lux(t, 0.0, 5) + 400
    assert signals.desk_lux(at(MONDAY, "12:00"), 0.0, 5) > 300
    assert signals.desk_lux(at(MONDAY, "23:00"), 0.0, 5) == 0


def test_lights_give_more_light_when_daylight_is_low_and_are_off_when_school_is_closed() -> None:
    for group in range(signals.GROUPS):
        assert (
            signals.lights_level(at(MONDAY, "08:05"), group)
            > signals.lights_level(at(MONDAY, "12:30"), group)
            or signals.lights_level(at(MONDAY, "08:05"), group) == signals.MAX_LEVEL
        )
        assert signals.lights_level(at(MONDAY, "20:00"), group) == 0
        assert signals.lights_level(at(SATURDAY, "10:00"), group) == 0
    # the corridor row gets less daylight than the window row, so more artificial light
    noon = at(MONDAY, "12:30")
    assert signals.lights_level(noon, 3) > signals.lights_level(noon, 0)


def test_lights_topping_up_daylight_keep_desks_above_300_lux_during_lessons() -> None:
    for lesson in LESSONS:
        t = datetime.combine(MONDAY, lesson.start) + timedelta(minutes=10)
        share = signals.lights_share(signals.auto_levels(t, 2))
        assert signals.desk_lux(t, share, 2) >= 300


@pytest.mark.parametrize("seed", SEEDS)
def test_recording_is_true_only_during_scheduled_lessons(seed: int) -> None:
    for day in (MONDAY + timedelta(days=d) for d in range(7)):
        scheduled = signals.recording_schedule(day, seed)
        assert set(scheduled) <= set(LESSONS)
        for t in minutes(day):
            expected = any(lesson.contains(t) for lesson in scheduled)
            assert signals.recording(t, seed) is expected
            if expected:
                assert signals.in_lesson(t)
    assert signals.recording_schedule(SATURDAY, seed) == []


def test_some_lessons_are_recorded_in_a_school_week() -> None:
    week = [MONDAY + timedelta(days=d) for d in range(5)]
    assert sum(len(signals.recording_schedule(day, 1)) for day in week) > 0


def test_storage_free_falls_only_while_recording() -> None:
    seed = 4
    previous = signals.storage_free_gb(at(MONDAY, "00:00"), seed)
    for t in minutes(MONDAY, step=5)[1:]:
        free = signals.storage_free_gb(t, seed)
        if free < previous:
            assert signals.recording(t - timedelta(minutes=1), seed)
        assert free <= previous
        previous = free
    assert previous < signals.storage_free_gb(at(MONDAY, "00:00"), seed) or not (
        signals.recording_schedule(MONDAY, seed)
    )


def test_power_follows_the_lights_and_energy_integrates_it() -> None:
    t = at(MONDAY, "10:10")
    assert signals.power_w(t, [254] * 4, 1) > signals.power_w(t, [0] * 4, 1) + 400
    day = minutes(MONDAY, step=10)
    energy = [signals.energy_kwh(t, 1) for t in day]
    assert all(b >= a for a, b in itertools.pairwise(energy))
    mean_w = sum(signals.power_w(t, signals.auto_levels(t, 1), 1) for t in day) / len(day)
    used = energy[-1] - energy[0]
    assert used == pytest.approx(mean_w * 24 / 1000, rel=0.1)


def test_energy_counter_continues_across_days_and_weekends() -> None:
    friday_night = signals.energy_kwh(at(MONDAY + timedelta(days=4), "23:59"), 1)
    next_monday = signals.energy_kwh(at(MONDAY + timedelta(days=7), "00:00"), 1)
    weekend_kwh = next_monday - friday_night
    assert 0 < weekend_kwh < 2 * 24 * signals.base_load_w(1) / 1000 * 1.01


def test_gas_reads_near_zero_lel() -> None:
    values = [signals.gas_lel_pct(t, 9) for t in minutes(MONDAY, step=7)]
    assert min(values) >= 0
    assert max(values) < 2


def test_temperature_and_humidity_drift_slowly_within_indoor_ranges() -> None:
    day = minutes(MONDAY, step=5)
    temps = [signals.temperature_c(t, 6) for t in day]
    hums = [signals.humidity_pct(t, 6) for t in day]
    assert min(temps) > 15 and max(temps) < 28
    assert min(hums) > 20 and max(hums) < 80
    assert max(abs(b - a) for a, b in itertools.pairwise(temps)) < 0.5


def test_same_seed_gives_the_same_values_and_another_seed_other_values() -> None:
    t = at(MONDAY, "10:30")
    funcs = (signals.co2_ppm, signals.temperature_c, signals.humidity_pct, signals.gas_lel_pct)
    for func in funcs:
        assert func(t, 11) == func(t, 11)
        assert func(t, 11) != func(t, 12)
    assert signals.energy_kwh(t, 11) == signals.energy_kwh(t, 11)
    assert [signals.recording_schedule(MONDAY + timedelta(days=d), 11) for d in range(5)] != [
        signals.recording_schedule(MONDAY + timedelta(days=d), 12) for d in range(5)
    ]


def test_sim_clock_maps_wall_time_to_school_time_at_its_speed() -> None:
    wall = [100.0]
    clock = SimClock(speed=60, start=at(MONDAY, "08:00"), wall=lambda: wall[0])
    assert clock.now() == at(MONDAY, "08:00")
    wall[0] += 10
    assert clock.now() == at(MONDAY, "08:10")
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=0)


def test_school_morning_is_a_weekday_at_eight() -> None:
    assert signals.school_morning(SATURDAY) == at(SATURDAY - timedelta(days=1), "08:00")
    assert signals.school_morning(MONDAY) == at(MONDAY, "08:00")
