"""Pure, seeded ``time -> value`` functions for one school: timetable, daylight, lights, air, power.

Every function takes a naive local school time (a ``datetime``) and a per-device ``seed`` and
returns the same value for the same inputs: noise comes from a numpy ``Generator`` seeded with
``(seed, signal key, time bucket)``, so a reading can be recomputed at any time by any process.
Only :class:`SimClock` touches the wall clock.
"""

from __future__ import annotations

import math
import time as wall_time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np

# ---------------------------------------------------------------- clock


class SimClock:
    """Simulated school time: ``start + (wall seconds since creation) * speed``."""

    def __init__(
        self,
        speed: float = 1.0,
        start: datetime | None = None,
        *,
        wall: Callable[[], float] = wall_time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed: must be > 0 (got {speed})")
        self.speed = speed
        self.start = start if start is not None else datetime.now().replace(microsecond=0)
        self._wall = wall
        self._wall0 = wall()

    def now(self) -> datetime:
        """The current simulated time."""
        return self.start + timedelta(seconds=(self._wall() - self._wall0) * self.speed)

    def sim_seconds(self, wall_seconds: float) -> float:
        """How many simulated seconds pass in ``wall_seconds`` of real time."""
        return wall_seconds * self.speed


def school_morning(today: date | None = None, at: time = time(8, 0)) -> datetime:
    """The most recent weekday (today if it is one) at ``at``: a demo start during lessons."""
    day = today or date.today()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, at)


# ---------------------------------------------------------------- timetable


@dataclass(frozen=True)
class Lesson:
    """One scheduled lesson of the school day."""

    index: int
    start: time
    end: time

    def contains(self, t: datetime) -> bool:
        return self.start <= t.time() < self.end

    @property
    def minutes(self) -> float:
        return (_sec(self.end) - _sec(self.start)) / 60


def _sec(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _hm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


#: A typical primary/secondary timetable: 45-minute lessons, a long morning break for exercises,
#: lunch and a midday rest, three afternoon lessons.
LESSONS: tuple[Lesson, ...] = tuple(
    Lesson(i, _hm(a), _hm(b))
    for i, (a, b) in enumerate(
        [
            ("08:00", "08:45"),
            ("08:55", "09:40"),
            ("10:00", "10:45"),
            ("10:55", "11:40"),
            ("14:00", "14:45"),
            ("14:55", "15:40"),
            ("15:50", "16:35"),
        ]
    )
)
SCHOOL_OPENS = time(7, 30)
SCHOOL_CLOSES = time(17, 30)
LUNCH = (time(11, 40), time(14, 0))


def is_school_day(t: datetime | date) -> bool:
    return t.weekday() < 5


def lesson_at(t: datetime) -> Lesson | None:
    """The lesson running at ``t`` on a school day, else None."""
    if not is_school_day(t):
        return None
    return next((lesson for lesson in LESSONS if lesson.contains(t)), None)


def in_lesson(t: datetime) -> bool:
    return lesson_at(t) is not None


def school_open(t: datetime) -> bool:
    return is_school_day(t) and SCHOOL_OPENS <= t.time() < SCHOOL_CLOSES


def occupancy(t: datetime) -> float:
    """Share of the class in the room: 1 in lessons, a few pupils in breaks and lunch, 0 closed."""
    if not school_open(t):
        return 0.0
    if in_lesson(t):
        return 1.0
    return 0.1 if LUNCH[0] <= t.time() < LUNCH[1] else 0.15


# ---------------------------------------------------------------- noise


def _key(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(seed: int, name: str, bucket: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, _key(name), bucket & 0xFFFFFFFFFFFF])


def noise(seed: int, name: str, t: datetime, sigma: float) -> float:
    """Gaussian noise, constant within one simulated second, reproducible from the seed."""
    return float(_rng(seed, name, int(t.timestamp())).normal(0.0, sigma))


def drift(seed: int, name: str, t: datetime, period_s: float) -> float:
    """Smooth value noise in [-1, 1]: random knots every ``period_s`` seconds, eased between."""
    x = t.timestamp() / period_s
    knot = math.floor(x)
    frac = x - knot
    a = _rng(seed, name, knot).uniform(-1.0, 1.0)
    b = _rng(seed, name, knot + 1).uniform(-1.0, 1.0)
    ease = frac * frac * (3 - 2 * frac)
    return float(a + (b - a) * ease)


def device_constant(seed: int, name: str, low: float, high: float) -> float:
    """A per-device constant (room size, base load...) drawn once from the seed."""
    return float(_rng(seed, name, 0).uniform(low, high))


# ---------------------------------------------------------------- daylight and lighting

SUNRISE_H = 6.0
DAY_LENGTH_H = 12.5
DAYLIGHT_DESK_LUX = 650.0  # desk illuminance from windows under a clear midday sky
LIGHTS_FULL_LUX = 550.0  # desk illuminance from all luminaires at full level
TARGET_DESK_LUX = 500.0  # what the daylight control aims for (GB 7793 asks >= 300 lx mean)
MAX_LEVEL = 254  # DALI arc level
GROUPS = 4  # lighting groups in a classroom: window row ... corridor row, blackboard


def sun(t: datetime) -> float:
    """Clear-sky sun elevation factor in [0, 1] (no seasons): 0 at night, 1 at solar noon."""
    hours = _sec(t.time()) / 3600 - SUNRISE_H
    return max(0.0, math.sin(math.pi * hours / DAY_LENGTH_H)) if 0 <= hours <= DAY_LENGTH_H else 0.0


def daylight(t: datetime, seed: int = 0) -> float:
    """Daylight factor in [0, 1]: the sun dimmed by slowly drifting clouds (up to 40 %)."""
    clouds = 0.2 * (1.0 + drift(seed, "clouds", t, 1800.0))
    return sun(t) * (1.0 - clouds)


def window_factor(group: int) -> float:
    """How much daylight reaches a group's desks: 1 by the window, less towards the corridor."""
    return max(0.3, 1.0 - 0.25 * group)


def lights_level(t: datetime, group: int, seed: int = 0) -> int:
    """Automatic DALI level 0..254 of one group: on while the school is open, topping daylight
    up to the target desk illuminance (more artificial light when daylight is low)."""
    if not school_open(t):
        return 0
    needed = TARGET_DESK_LUX - DAYLIGHT_DESK_LUX * daylight(t, seed) * window_factor(group)
    share = min(1.0, max(0.1, needed / LIGHTS_FULL_LUX))
    if not in_lesson(t):
        share = max(0.1, share * 0.6)  # breaks: dimmed, not off
    return round(MAX_LEVEL * share)


def lights_share(levels: Sequence[float]) -> float:
    """Mean level of some groups as a share of full output, 0..1."""
    return float(np.mean(np.asarray(levels, dtype=float))) / MAX_LEVEL if len(levels) else 0.0


def desk_lux(t: datetime, lights: float, seed: int = 0) -> float:
    """Illuminance on a desk: daylight plus ``lights`` (0..1 share of full artificial output)."""
    value = DAYLIGHT_DESK_LUX * daylight(t, seed) + LIGHTS_FULL_LUX * lights
    return max(0.0, value * (1.0 + noise(seed, "lux", t, 0.01)))


# ---------------------------------------------------------------- classroom air

OUTDOOR_CO2_PPM = 420.0
CO2_PER_PUPIL_M3_H = 0.0187  # CO2 exhaled by a seated pupil (about 18.7 L/h)


@dataclass(frozen=True)
class Room:
    """Per-room constants drawn from the seed: pupils, volume and air changes per hour."""

    pupils: float
    volume_m3: float
    ach_lesson: float  # windows mostly shut
    ach_break: float  # windows opened in breaks
    ach_closed: float  # infiltration only

    @classmethod
    def from_seed(cls, seed: int) -> Room:
        return cls(
            pupils=round(device_constant(seed, "pupils", 35, 46)),
            volume_m3=device_constant(seed, "volume", 170, 210),
            ach_lesson=device_constant(seed, "ach", 3.0, 5.0),
            ach_break=device_constant(seed, "ach_break", 5.0, 7.0),
            ach_closed=0.6,
        )


def _segments() -> list[int]:
    """Seconds of the day where occupancy or ventilation may change."""
    points = {0, _sec(SCHOOL_OPENS), _sec(SCHOOL_CLOSES), _sec(LUNCH[0]), _sec(LUNCH[1])}
    for lesson in LESSONS:
        points |= {_sec(lesson.start), _sec(lesson.end)}
    return sorted(points)


_BOUNDS = _segments()


def _co2_model(t: datetime, seed: int) -> float:
    """Noise-free classroom CO2 (ppm) from the first-order model."""
    room = Room.from_seed(seed)
    midnight = datetime.combine(t.date(), time())
    now_s = (t - midnight).total_seconds()
    level = OUTDOOR_CO2_PPM
    for start, end in zip(_BOUNDS, [*_BOUNDS[1:], 86400], strict=True):
        if start >= now_s:
            break
        probe = midnight + timedelta(seconds=start)
        occ = occupancy(probe)
        ach = room.ach_lesson if in_lesson(probe) else room.ach_break if occ else room.ach_closed
        generation = occ * room.pupils * CO2_PER_PUPIL_M3_H / room.volume_m3 * 1e6  # ppm/h
        equilibrium = OUTDOOR_CO2_PPM + generation / ach
        hours = (min(end, now_s) - start) / 3600
        level = equilibrium + (level - equilibrium) * math.exp(-ach * hours)
    return level


def co2_ppm(t: datetime, seed: int = 0) -> float:
    """Classroom CO2: a first-order mass balance, exact per constant-occupancy segment.

    ``C_eq = outdoor + generation / ach``; ``C`` relaxes towards ``C_eq`` with rate ``ach``.
    The room starts each day at outdoor level (the night airs it out).
    """
    return max(OUTDOOR_CO2_PPM - 30, _co2_model(t, seed) + noise(seed, "co2", t, 8.0))


def _crowding(t: datetime, seed: int) -> float:
    """How much the pupils have warmed and moistened the air: CO2 excess as a 0..1.5 share."""
    return min(1.5, (_co2_model(t, seed) - OUTDOOR_CO2_PPM) / 1000.0)


def temperature_c(t: datetime, seed: int = 0) -> float:
    """Indoor temperature: a daily swing, warmth from pupils, slow drift and sensor noise."""
    base = device_constant(seed, "t_base", 19.5, 22.5)
    daily = 1.5 * math.sin(2 * math.pi * (_sec(t.time()) / 3600 - 9.0) / 24)
    return (
        base
        + daily
        + 0.8 * _crowding(t, seed)
        + 0.6 * drift(seed, "t_drift", t, 3 * 3600.0)
        + noise(seed, "t", t, 0.05)
    )


def humidity_pct(t: datetime, seed: int = 0) -> float:
    """Relative humidity: falls as the room warms, rises with pupils, drifts slowly."""
    base = device_constant(seed, "rh_base", 40.0, 55.0)
    warmth = temperature_c(t, seed) - 21.0
    value = (
        base
        - 2.0 * warmth
        + 5.0 * _crowding(t, seed)
        + 4.0 * drift(seed, "rh_drift", t, 4 * 3600.0)
        + noise(seed, "rh", t, 0.3)
    )
    return min(95.0, max(10.0, value))


# ---------------------------------------------------------------- lab safety


def gas_lel_pct(t: datetime, seed: int = 0) -> float:
    """Combustible gas in %LEL: a clean lab reads near zero with a little sensor noise."""
    return max(0.0, 0.3 + 0.2 * drift(seed, "lel", t, 600.0) + noise(seed, "lel_n", t, 0.1))


def sensor_temperature_c(t: datetime, seed: int = 0) -> float:
    return temperature_c(t, seed) + 3.0  # the cartridge runs a little warmer than the room


# ---------------------------------------------------------------- energy

GROUP_W = 110.0  # LED luminaires of one lighting group at full level
PLUG_W = 450.0  # projector, teacher PC, smart board while a lesson runs
MAINS_V = 220.0
MAINS_HZ = 50.0
_EPOCH = date(2024, 1, 1)  # a Monday; energy counters start here


def base_load_w(seed: int) -> float:
    return device_constant(seed, "base_w", 250.0, 450.0)


def power_w(t: datetime, levels: Sequence[float], seed: int = 0) -> float:
    """Active power on the panel: base load, lesson plug load and the lights at ``levels``."""
    lights = sum(GROUP_W * level / MAX_LEVEL for level in levels)
    plug = PLUG_W if in_lesson(t) else 0.0
    return max(0.0, base_load_w(seed) + plug + lights + noise(seed, "p", t, 5.0))


def auto_levels(t: datetime, seed: int = 0) -> list[int]:
    """The automatic levels of every group at ``t``."""
    return [lights_level(t, group, seed) for group in range(GROUPS)]


def voltage_v(t: datetime, seed: int = 0) -> float:
    return MAINS_V + 3.0 * drift(seed, "v", t, 900.0) + noise(seed, "v_n", t, 0.3)


def frequency_hz(t: datetime, seed: int = 0) -> float:
    return MAINS_HZ + 0.03 * drift(seed, "hz", t, 120.0)


def power_factor(t: datetime, seed: int = 0) -> float:
    return 0.93 + 0.03 * drift(seed, "pf", t, 1800.0)


def current_a(t: datetime, power: float, seed: int = 0) -> float:
    return power / (voltage_v(t, seed) * power_factor(t, seed))


@lru_cache(maxsize=4096)
def _day_energy_kwh(day: date, seed: int) -> tuple[float, ...]:
    """Cumulative kWh at each minute of ``day`` (automatic lights, no noise), 1441 values."""
    midnight = datetime.combine(day, time())
    minutes = [midnight + timedelta(minutes=m) for m in range(1440)]
    base = base_load_w(seed)
    watts = np.array(
        [
            base + (PLUG_W if in_lesson(m) else 0.0) + GROUP_W * sum(_clear_levels(m)) / MAX_LEVEL
            for m in minutes
        ]
    )
    return (0.0, *np.cumsum(watts / 60.0 / 1000.0).tolist())


def _clear_levels(t: datetime) -> list[int]:
    """Automatic levels under a fixed 20 % cloud cover: the smooth profile energy integrates."""
    if not school_open(t):
        return [0] * GROUPS
    out = []
    for group in range(GROUPS):
        needed = TARGET_DESK_LUX - DAYLIGHT_DESK_LUX * sun(t) * 0.8 * window_factor(group)
        share = min(1.0, max(0.1, needed / LIGHTS_FULL_LUX))
        out.append(round(MAX_LEVEL * (share if in_lesson(t) else max(0.1, share * 0.6))))
    return out


def energy_kwh(t: datetime, seed: int = 0) -> float:
    """Import energy register: a seeded meter reading at the epoch plus the integral of power."""
    start = device_constant(seed, "kwh0", 1000.0, 20000.0)
    day = t.date()
    weekdays = int(np.busday_count(_EPOCH, day)) if day > _EPOCH else 0
    weekend = max(0, (day - _EPOCH).days - weekdays)
    monday = _EPOCH  # any weekday and any weekend day have the same profile
    full = (
        weekdays * _day_energy_kwh(monday, seed)[-1]
        + weekend * _day_energy_kwh(monday + timedelta(days=5), seed)[-1]
    )
    profile = _day_energy_kwh(monday if is_school_day(day) else monday + timedelta(days=5), seed)
    minute = (_sec(t.time()) + t.microsecond / 1e6) / 60
    whole = int(minute)
    today = profile[whole] + (profile[min(whole + 1, 1440)] - profile[whole]) * (minute - whole)
    return start + full + today


# ---------------------------------------------------------------- recording rooms

STORAGE_GB = 2000.0
RECORD_GB_PER_H = 3.6  # two 4 Mbit/s streams (teacher and composite)


def recording_schedule(day: date, seed: int = 0) -> list[Lesson]:
    """The lessons a recording room records on ``day``: a seeded choice, none at weekends."""
    if not is_school_day(day):
        return []
    draws = _rng(seed, "schedule", day.toordinal()).random(len(LESSONS))
    return [lesson for lesson, draw in zip(LESSONS, draws, strict=True) if draw < 0.45]


def recording(t: datetime, seed: int = 0) -> bool:
    """True exactly while a scheduled lesson runs."""
    return any(lesson.contains(t) for lesson in recording_schedule(t.date(), seed))


def _recorded_hours(day: date, until: time, seed: int) -> float:
    total = 0.0
    for lesson in recording_schedule(day, seed):
        end = min(_sec(lesson.end), _sec(until))
        total += max(0, end - _sec(lesson.start)) / 3600
    return total


def storage_free_gb(t: datetime, seed: int = 0) -> float:
    """Free recording storage: falls while recording; the weekend archive job empties it."""
    used0 = device_constant(seed, "used0", 200.0, 900.0)
    monday = t.date() - timedelta(days=t.weekday())
    hours = sum(
        _recorded_hours(monday + timedelta(days=d), time(23, 59, 59), seed)
        for d in range((t.date() - monday).days)
    )
    hours += _recorded_hours(t.date(), t.time(), seed)
    return max(0.0, STORAGE_GB - used0 - RECORD_GB_PER_H * hours)
