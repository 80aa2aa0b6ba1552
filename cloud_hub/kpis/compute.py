"""Compute the KPIs of one school, district or city from the hub database.

Every query is limited to the schools of the requested level *and* the caller's scope inside the
database (``Scope.schools``); a level or id outside the scope finds no school, as an unknown one.
Figures are gathered per school, then summed: a district's or city's rate is its schools'
numerators over their denominators (not an average of rates)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from cloud_hub.auth.models import GatewayAccess
from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import Device, District, Gateway, School, TelemetryWindow
from cloud_hub.kpis.definitions import BY_KPI, Kpi
from cloud_hub.settings import KpiSettings
from device_profiles.schema import Profile

ONLINE_WITHIN = timedelta(hours=24)
WEEK = timedelta(days=7)
DESK_LUX, DESK_UNIFORMITY = 300.0, 0.7  # GB 7793-2010
BOARD_LUX, BOARD_UNIFORMITY = 500.0, 0.8
ILLUMINANCE, RECORDING_STATE, IMPORT_ENERGY = "illuminance", "recording_state", "import_energy"
RECORDING = 1  # recording_state code of the recording classroom controller profile
CLASSROOM_DOMAINS = {"lighting", "environment", "recording"}


class Level(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    SCHOOL = "school"


@dataclass(frozen=True)
class LessonTimes:
    """When lessons happen, in the city's local time: school days (0 = Monday) and periods."""

    timezone: str = "Asia/Shanghai"
    school_days: frozenset[int] = frozenset(range(5))
    periods: tuple[tuple[time, time], ...] = ((time(8), time(12)), (time(14), time(17, 30)))

    @classmethod
    def from_settings(cls, settings: KpiSettings) -> LessonTimes:
        periods = []
        for period in settings.lesson_periods:
            start, _, end = period.partition("-")
            periods.append((time.fromisoformat(start), time.fromisoformat(end)))
        return cls(settings.timezone, frozenset(settings.school_days), tuple(periods))

    def covers(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        if local.weekday() not in self.school_days:
            return False
        return any(start <= local.time() < end for start, end in self.periods)


@dataclass
class SchoolFigures:
    """What one school contributes to every KPI."""

    school_id: str
    district_id: str
    iot_online: bool = False
    classrooms: set[int] = field(default_factory=set)
    lit_classrooms: set[int] = field(default_factory=set)
    recording_online: bool = False
    lesson_minutes: float = 0.0
    compliant_minutes: float = 0.0
    recorded_hours: float = 0.0
    energy_kwh: float | None = None


@dataclass(frozen=True)
class KpiValue:
    kpi: Kpi
    value: float | None  # None: nothing to measure yet (e.g. no classroom, no meter)
    numerator: float
    denominator: float

    @property
    def meets_target(self) -> bool | None:
        definition = BY_KPI[self.kpi]
        if definition.target is None or self.value is None:
            return None
        if definition.higher_is_better:
            return self.value >= definition.target
        return self.value <= definition.target


@dataclass(frozen=True)
class KpiReport:
    level: Level
    id: str
    at: datetime
    schools: int
    values: list[KpiValue]


def compute_kpis(
    session: Session,
    *,
    level: Level,
    id: str,
    scope: Scope | None,
    now: datetime,
    profiles: Mapping[str, Profile],
    lessons: LessonTimes | None = None,
) -> KpiReport | None:
    """The KPIs of one school, district or city at ``now``; None when no school of it is in
    ``scope`` (or it does not exist)."""
    lessons = lessons or LessonTimes()
    where = [_at_level(level, id)]
    if scope is not None:
        where.append(scope.schools(School.id))
    rows = session.execute(select(School.id, School.district_id).where(*where)).all()
    if not rows:
        return None
    schools = {school_id: SchoolFigures(school_id, district_id) for school_id, district_id in rows}
    _gateways(session, schools, now)
    devices = _devices(session, schools, now, profiles)
    _windows(session, schools, devices, now, lessons)
    return KpiReport(level=level, id=id, at=now, schools=len(schools), values=_sum(schools))


def _at_level(level: Level, id: str) -> ColumnElement[bool]:
    if level is Level.SCHOOL:
        return School.id == id
    if level is Level.DISTRICT:
        return School.district_id == id
    return School.district_id.in_(select(District.id).where(District.city_id == id))


def _gateways(session: Session, schools: dict[str, SchoolFigures], now: datetime) -> None:
    """A school is covered by campus IoT when an approved gateway of it was heard in 24 h (a hub
    without provisioning has no access rows: its registry-bound gateways count)."""
    query = (
        select(Gateway.school_id)
        .outerjoin(GatewayAccess, GatewayAccess.gateway_id == Gateway.id)
        .where(
            Gateway.school_id.in_(list(schools)),
            Gateway.last_seen_at >= now - ONLINE_WITHIN,
            or_(GatewayAccess.state.is_(None), GatewayAccess.state == "approved"),
        )
    )
    for school_id in session.scalars(query):
        if school_id is not None:  # always, by the WHERE clause
            schools[school_id].iot_online = True


@dataclass(frozen=True)
class _Device:
    id: int
    key: str
    school_id: str
    room_id: int | None
    domain: str


def _devices(
    session: Session,
    schools: dict[str, SchoolFigures],
    now: datetime,
    profiles: Mapping[str, Profile],
) -> dict[int, _Device]:
    query = (
        select(Device.id, Device.key, Device.profile, Device.room_id, Device.last_seen_at,
               Device.last_ok_at, Gateway.school_id)
        .join(Gateway, Gateway.id == Device.gateway_id)
        .where(Gateway.school_id.in_(list(schools)))
    )  # fmt: skip
    since = now - ONLINE_WITHIN
    found = {}
    for device_id, key, profile_id, room_id, seen, ok, school_id in session.execute(query):
        profile = profiles.get(profile_id)
        if profile is None or school_id is None:
            continue
        domain = profile.domain
        found[device_id] = _Device(device_id, key, school_id, room_id, domain)
        figures = schools[school_id]
        online = any(at is not None and at >= since for at in (seen, ok))
        if room_id is not None and domain in CLASSROOM_DOMAINS:
            figures.classrooms.add(room_id)
            if domain == "lighting" and online:
                figures.lit_classrooms.add(room_id)
        if domain == "recording" and online:
            figures.recording_online = True
    return found


def _windows(
    session: Session,
    schools: dict[str, SchoolFigures],
    devices: dict[int, _Device],
    now: datetime,
    lessons: LessonTimes,
) -> None:
    wanted = {
        ILLUMINANCE: {d.id for d in devices.values() if d.domain == "environment"},
        RECORDING_STATE: {d.id for d in devices.values() if d.domain == "recording"},
        IMPORT_ENERGY: {d.id for d in devices.values() if d.domain == "energy"},
    }
    ids = set().union(*wanted.values())
    if not ids:
        return
    query = select(
        TelemetryWindow.device_id, TelemetryWindow.point, TelemetryWindow.window_start,
        TelemetryWindow.window_end, TelemetryWindow.min, TelemetryWindow.max,
        TelemetryWindow.mean, TelemetryWindow.last,
    ).where(
        TelemetryWindow.device_id.in_(ids),
        TelemetryWindow.point.in_(list(wanted)),
        TelemetryWindow.window_start >= now - WEEK,
        TelemetryWindow.window_start < now,
    )  # fmt: skip
    lux: dict[tuple[int, datetime], _Minute] = defaultdict(_Minute)
    energy: dict[int, tuple[float, float]] = {}
    for device_id, point, start, end, low, high, mean, last in session.execute(query):
        if device_id not in wanted[point]:
            continue
        device = devices[device_id]
        figures = schools[device.school_id]
        if point == ILLUMINANCE and device.room_id is not None and lessons.covers(start):
            minute = lux[(device.room_id, start.replace(second=0, microsecond=0))]
            minute.add(device, mean, (end - start).total_seconds() / 60)
        elif point == RECORDING_STATE and last == RECORDING:
            figures.recorded_hours += (end - start).total_seconds() / 3600
        elif point == IMPORT_ENERGY and start >= now - ONLINE_WITHIN:
            held = energy.get(device_id, (low, high))
            energy[device_id] = (min(held[0], low), max(held[1], high))
    for minute in lux.values():
        figures = schools[minute.school_id]
        figures.lesson_minutes += minute.minutes
        figures.compliant_minutes += minute.minutes if minute.compliant() else 0.0
    for device_id, (low, high) in energy.items():
        figures = schools[devices[device_id].school_id]
        figures.energy_kwh = (figures.energy_kwh or 0.0) + high - low


@dataclass
class _Minute:
    """The illuminance readings of one room in one lesson minute."""

    school_id: str = ""
    minutes: float = 0.0
    desk: list[float] = field(default_factory=list)
    board: list[float] = field(default_factory=list)

    def add(self, device: _Device, lux: float, minutes: float) -> None:
        self.school_id = device.school_id
        self.minutes = max(self.minutes, minutes)
        (self.board if "blackboard" in device.key else self.desk).append(lux)

    def compliant(self) -> bool:
        return _meets(self.desk, DESK_LUX, DESK_UNIFORMITY) and _meets(
            self.board, BOARD_LUX, BOARD_UNIFORMITY
        )


def _meets(values: list[float], lux: float, uniformity: float) -> bool:
    """Mean at least ``lux`` and, with several sensors, min/mean at least ``uniformity``; no
    sensor of the kind: nothing to fail."""
    if not values:
        return True
    mean = sum(values) / len(values)
    if mean < lux:
        return False
    return len(values) < 2 or min(values) / mean >= uniformity


def _rate(numerator: float, denominator: float) -> float | None:
    return 100.0 * numerator / denominator if denominator else None


def _sum(schools: Mapping[str, SchoolFigures]) -> list[KpiValue]:
    all_ = list(schools.values())
    n = len(all_)
    iot = sum(f.iot_online for f in all_)
    classrooms = sum(len(f.classrooms) for f in all_)
    lit = sum(len(f.lit_classrooms) for f in all_)
    recording = sum(f.recording_online for f in all_)
    lesson = sum(f.lesson_minutes for f in all_)
    compliant = sum(f.compliant_minutes for f in all_)
    hours = sum(f.recorded_hours for f in all_)
    metered = [f.energy_kwh for f in all_ if f.energy_kwh is not None]
    energy = sum(metered)
    return [
        KpiValue(Kpi.CAMPUS_IOT_COVERAGE, _rate(iot, n), iot, n),
        KpiValue(Kpi.SMART_LIGHTING_COVERAGE, _rate(lit, classrooms), lit, classrooms),
        KpiValue(Kpi.RECORDING_CLASSROOM_COVERAGE, _rate(recording, n), recording, n),
        KpiValue(Kpi.LIGHTING_COMPLIANCE, _rate(compliant, lesson), compliant, lesson),
        KpiValue(Kpi.RECORDING_USAGE, hours, hours, 1),
        KpiValue(
            Kpi.ENERGY_PER_SCHOOL,
            energy / len(metered) if metered else None,
            energy,
            len(metered),
        ),
    ]
