"""Alert rules, named actions and write limits of a profile: the models the edge rule engine,
the local actions, hub commands and the hub's window rules are driven by.

A rule is a condition tree plus what happens when it holds:

* ``threshold`` ``<stat of point over over_s> <op> threshold``, with ``hysteresis`` on clearing;
  ``over_s: 0`` compares each reading as it is acquired;
* ``rate``: change of the point per minute over ``over_s``;
* ``stale``: the point has not changed (or not been read) for ``stale_s``;
* ``offline``: the device is offline;
* ``all`` / ``any`` of nested conditions;

each optionally limited by ``when`` (a school-calendar condition such as ``lesson`` or
``not window:chem_store_access``). ``for_s`` / ``clear_for_s`` delay raising and clearing.
``where`` says who evaluates it: the gateway (``edge``, every reading) or the hub (``hub``, on the
window statistic ``stat``); never both, so one condition never raises two alerts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campus_protocol.messages import Severity

PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

#: the calendar conditions ``when`` may name (``window:<name>`` names a calendar window)
CALENDAR_CONDITIONS = (
    "lesson",
    "school_hours",
    "after_hours",
    "school_day",
    "holiday",
    "weekend",
    "recording_lesson",
)
WHEN_PATTERN = re.compile(
    r"^(not )?(" + "|".join(CALENDAR_CONDITIONS) + r"|window:[a-z][a-z0-9_]{0,63})$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        """Whether ``value <op> threshold`` (the agent's and the hub's rules alike)."""
        return _OPERATORS[self](value, threshold)


_OPERATORS: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}


class WindowStat(StrEnum):
    MIN = "min"
    MAX = "max"
    MEAN = "mean"
    LAST = "last"


class RuleSite(StrEnum):
    EDGE = "edge"
    HUB = "hub"


class ConditionKind(StrEnum):
    THRESHOLD = "threshold"
    RATE = "rate"
    STALE = "stale"
    OFFLINE = "offline"
    ALL = "all"
    ANY = "any"


#: condition kind -> the fields it requires (the one table the validators use)
REQUIRED_FIELDS: dict[ConditionKind, tuple[str, ...]] = {
    ConditionKind.THRESHOLD: ("point", "op", "threshold"),
    ConditionKind.RATE: ("point", "op", "threshold", "over_s"),
    ConditionKind.STALE: ("point", "stale_s"),
    ConditionKind.OFFLINE: (),
    ConditionKind.ALL: ("conditions",),
    ConditionKind.ANY: ("conditions",),
}
_POINTLESS = (ConditionKind.OFFLINE, ConditionKind.ALL, ConditionKind.ANY)


def _unset(name: str, value: object) -> bool:
    """A required field counts as missing when None, empty, or a zero duration."""
    return value is None or value == [] or (name == "over_s" and value == 0.0)


class Condition(_Strict):
    """One condition; ``all`` / ``any`` nest others."""

    kind: ConditionKind = ConditionKind.THRESHOLD
    point: PointName | None = None
    op: Comparison | None = None
    threshold: float | None = None
    stat: WindowStat = WindowStat.MAX  # hub: the window statistic; edge: used with over_s > 0
    over_s: float = Field(default=0.0, ge=0, le=86_400)  # rolling duration (0 = each reading)
    hysteresis: float = Field(default=0.0, ge=0)  # a raised threshold clears only past it
    stale_s: float | None = Field(default=None, gt=0, le=86_400 * 7)
    when: str | None = None  # a calendar condition, e.g. "lesson" or "not window:chem_store"
    conditions: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Condition:
        missing = [name for name in REQUIRED_FIELDS[self.kind] if _unset(name, getattr(self, name))]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required for kind {self.kind.value}")
        if self.kind in _POINTLESS and self.point is not None:
            raise ValueError(f"point: not used by kind {self.kind.value}")
        if self.kind not in (ConditionKind.ALL, ConditionKind.ANY) and self.conditions:
            raise ValueError(f"conditions: only for kinds all and any (not {self.kind.value})")
        if self.kind in (ConditionKind.ALL, ConditionKind.ANY) and len(self.conditions) < 2:
            raise ValueError(f"conditions: kind {self.kind.value} needs at least two")
        if self.when is not None and not WHEN_PATTERN.fullmatch(self.when):
            known = ", ".join(CALENDAR_CONDITIONS)
            raise ValueError(f"when: {self.when!r} is not [not ]<{known}> or [not ]window:<name>")
        return self

    def leaves(self) -> Iterator[Condition]:
        """Every non-composite condition in this tree."""
        if self.conditions:
            for child in self.conditions:
                yield from child.leaves()
        else:
            yield self

    @property
    def first_point(self) -> str | None:
        return next((c.point for c in self.leaves() if c.point is not None), None)


class FlapPolicy(_Strict):
    """``raises`` raises within ``window_s`` turn the rule into one flapping event."""

    raises: int = Field(default=4, ge=2, le=1000)
    window_s: float = Field(default=600.0, gt=0, le=86_400)


class AlertRule(Condition):
    """A rule from a standard (cite the clause) or a product rule (say so in ``standard``)."""

    id: RuleId
    severity: Severity
    standard: str = Field(min_length=3)  # the clause the threshold comes from
    message: str = ""
    where: RuleSite = RuleSite.HUB
    for_s: float = Field(default=0.0, ge=0, le=86_400)  # on-delay: holds this long first
    clear_for_s: float = Field(default=0.0, ge=0, le=86_400)  # off-delay before clearing
    flapping: FlapPolicy = FlapPolicy()

    @model_validator(mode="after")
    def _hub_rules_are_window_thresholds(self) -> AlertRule:
        if self.where is RuleSite.HUB:
            edge_only = [
                name for name in ("when", "stale_s") if getattr(self, name) is not None
            ] + [
                name
                for name in ("over_s", "hysteresis", "for_s", "clear_for_s")
                if getattr(self, name)
            ]
            if self.kind is not ConditionKind.THRESHOLD or edge_only:
                what = edge_only or [f"kind {self.kind.value}"]
                raise ValueError(
                    f"where: hub rules are window thresholds; {', '.join(what)} needs where: edge"
                )
        return self


class PointWrite(_Strict):
    point: PointName
    value: float


class NamedAction(_Strict):
    """Writes a profile offers by name (e.g. a lighting scene), each verified by reading back."""

    id: RuleId
    description: str = ""
    writes: list[PointWrite] = Field(min_length=1, max_length=64)
    verify: list[PointWrite] = Field(default_factory=list)  # default: read back each write


class WriteLimit(_Strict):
    """What a command may write to one point and where its result is read back."""

    min: float
    max: float
    integer: bool = True
    readback: PointName | None = None  # default: the point itself
    direct: bool = True  # false: only named actions may write it (its encoding is a command)

    @model_validator(mode="after")
    def _ordered(self) -> WriteLimit:
        if self.min > self.max:
            raise ValueError(f"min: {self.min} is above max {self.max}")
        return self


def check_rules_and_actions(
    *,
    alerts: list[AlertRule],
    actions: list[NamedAction],
    writes: dict[str, WriteLimit],
    readable: set[str],
    writable: set[str],
) -> None:
    """Cross-check rules, actions and write limits against the profile's points."""
    names = readable | writable
    ids = [rule.id for rule in alerts]
    for index, rule in enumerate(alerts):
        if ids.count(rule.id) > 1:
            raise ValueError(f"alerts[{index}].id: {rule.id!r} duplicated")
        for leaf in rule.leaves():
            if leaf.point is not None and leaf.point not in names:
                raise ValueError(f"alerts[{index}].point: unknown point {leaf.point!r}")
    action_ids = [a.id for a in actions]
    for index, action in enumerate(actions):
        if action_ids.count(action.id) > 1:
            raise ValueError(f"actions[{index}].id: {action.id!r} duplicated")
        for write in action.writes:
            if write.point not in writable:
                raise ValueError(f"actions[{index}].writes: point {write.point!r} is not writable")
        checks = action.verify or action.writes
        for check in checks:
            if check.point not in readable:
                raise ValueError(
                    f"actions[{index}].verify: point {check.point!r} cannot be read back"
                    " (name a readable point in verify:)"
                )
    for point, limit in writes.items():
        if point not in writable:
            raise ValueError(f"writes.{point}: not a writable point")
        target = limit.readback or point
        if target not in readable:
            raise ValueError(f"writes.{point}.readback: point {target!r} cannot be read back")
