"""The school calendar rules may depend on: lesson periods, school hours, school days, holidays,
make-up days, named time windows and the recording timetable of each recording room.

A school keeps it in one YAML file (``calendar_file:`` in agent.yaml); without one the default
timetable below applies (45-minute lessons 08:00-16:35, school open 07:30-17:30, Monday-Friday,
no holidays, the chemicals store open to staff 08:00-16:35 on school days). Times are local to
``timezone``.

Example::

    timezone: Asia/Shanghai
    holidays: ["2026-10-01..2026-10-07", "2027-01-01"]
    workdays: ["2026-10-10"]                # a make-up Saturday (调休)
    windows:
      chem_store_access: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "16:35"}]
    recording:
      rec-101: {mon: [1, 3], wed: [2]}       # lesson numbers (1 = first lesson)
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campus_config import ConfigError, format_validation_error


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> Weekday:
        return list(cls)[day.weekday()]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Strict):
    start: time
    end: time

    @model_validator(mode="after")
    def _forward(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"end: {self.end} is not after start {self.start}")
        return self

    def contains(self, at: time) -> bool:
        return self.start <= at < self.end


class Window(Period):
    days: list[Weekday] = Field(default_factory=lambda: list(Weekday))


def _periods(*spans: tuple[str, str]) -> list[Period]:
    return [Period(start=time.fromisoformat(a), end=time.fromisoformat(b)) for a, b in spans]


DEFAULT_LESSONS = _periods(
    ("08:00", "08:45"),
    ("08:55", "09:40"),
    ("10:00", "10:45"),
    ("10:55", "11:40"),
    ("14:00", "14:45"),
    ("14:55", "15:40"),
    ("15:50", "16:35"),
)
DEFAULT_SCHOOL_HOURS = Period(start=time(7, 30), end=time(17, 30))
SCHOOL_WEEK = [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI]
#: windows the bundled profiles' rules name: the chemicals store may be opened in lesson hours
DEFAULT_WINDOWS = {
    "chem_store_access": [Window(days=SCHOOL_WEEK, start=time(8, 0), end=time(16, 35))],
}


class SchoolCalendar(_Strict):
    """Answers the calendar conditions a rule's ``when`` names, at a moment and in a room."""

    timezone: str = "Asia/Shanghai"
    school_days: list[Weekday] = Field(default_factory=lambda: list(SCHOOL_WEEK))
    school_hours: Period = DEFAULT_SCHOOL_HOURS
    lessons: list[Period] = Field(default_factory=lambda: list(DEFAULT_LESSONS))
    holidays: list[str] = Field(default_factory=list)  # "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD"
    workdays: list[date] = Field(default_factory=list)  # make-up school days on a weekend
    windows: dict[str, list[Window]] = Field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    recording: dict[str, dict[Weekday, list[int]]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("holidays")
    @classmethod
    def _dates_or_ranges(cls, value: list[str]) -> list[str]:
        for text in value:
            _day_range(text)
        return value

    @model_validator(mode="after")
    def _lessons_exist(self) -> SchoolCalendar:
        for room, week in self.recording.items():
            for day, numbers in week.items():
                bad = [n for n in numbers if not 1 <= n <= len(self.lessons)]
                if bad:
                    raise ValueError(
                        f"recording.{room}.{day.value}: lesson numbers {bad} outside"
                        f" 1..{len(self.lessons)}"
                    )
        return self

    def local(self, at: float) -> datetime:
        return datetime.fromtimestamp(at, ZoneInfo(self.timezone))

    def is_holiday(self, day: date) -> bool:
        for text in self.holidays:
            first, last = _day_range(text)
            if first <= day <= last:
                return True
        return False

    def is_school_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return Weekday.of(day) in self.school_days and not self.is_holiday(day)

    def lesson_number(self, moment: datetime) -> int | None:
        """1-based number of the lesson running at ``moment`` on a school day, else None."""
        if not self.is_school_day(moment.date()):
            return None
        for number, period in enumerate(self.lessons, start=1):
            if period.contains(moment.time()):
                return number
        return None

    def holds(self, when: str, at: float, room: str = "") -> bool:
        """Whether the calendar condition ``when`` (``[not ]name``) holds at ``at`` in ``room``."""
        negate = when.startswith("not ")
        name = when.removeprefix("not ")
        return self._holds(name, self.local(at), room) != negate

    def _holds(self, name: str, moment: datetime, room: str) -> bool:
        day = moment.date()
        school_day = self.is_school_day(day)
        in_hours = school_day and self.school_hours.contains(moment.time())
        if name == "lesson":
            return self.lesson_number(moment) is not None
        if name == "school_hours":
            return in_hours
        if name == "after_hours":
            return not in_hours
        if name == "school_day":
            return school_day
        if name == "holiday":
            return self.is_holiday(day)
        if name == "weekend":
            return Weekday.of(day) in (Weekday.SAT, Weekday.SUN)
        if name == "recording_lesson":
            number = self.lesson_number(moment)
            return number is not None and number in self.recording.get(room, {}).get(
                Weekday.of(day), []
            )
        if name.startswith("window:"):
            windows = self.windows.get(name.removeprefix("window:"), [])
            weekday = Weekday.of(day)
            return any(weekday in w.days and w.contains(moment.time()) for w in windows)
        raise ValueError(f"unknown calendar condition {name!r}")

    def missing_windows(self, whens: list[str]) -> list[str]:
        """Window names rules refer to that this calendar does not define."""
        names = {w.removeprefix("not ").removeprefix("window:") for w in whens if "window:" in w}
        return sorted(names - set(self.windows))


def _day_range(text: str) -> tuple[date, date]:
    first, _, last = text.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError:
        raise ValueError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if end < start:
        raise ValueError(f"{text!r}: the range ends before it starts")
    if end - start > timedelta(days=366):
        raise ValueError(f"{text!r}: a holiday range longer than a year")
    return start, end


def load_calendar(path: Path | None) -> SchoolCalendar:
    """The calendar in ``path``, or the default timetable when ``path`` is None."""
    if path is None:
        return SchoolCalendar()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the calendar: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: <root>: must be a mapping")
    try:
        return SchoolCalendar.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from None
