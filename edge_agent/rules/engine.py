"""The edge rule engine: profile rules (plus site overrides) evaluated on every reading as it is
acquired, and once a second for what time alone changes (delays, stale values, offline devices,
calendar conditions, flapping quiet periods).

Pure apart from the optional ``RuleStore``: readings and device availability go in, ``Firing``s
(an ``Event`` for the outbox, and what the local actions need) come out.

Offline folding: devices that share a source (a Modbus TCP endpoint, the site broker) and have an
offline rule are watched as a group too. When every one of them is offline the source raises one
``source_offline`` event listing them, and their own offline rules stay quiet until it clears.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from campus_config import format_validation_error
from campus_protocol.messages import Event, EventState, Severity
from device_profiles.rules import AlertRule, Comparison, Condition, ConditionKind, RuleSite
from device_profiles.schema import Profile
from edge_agent.rules.calendar import SchoolCalendar
from edge_agent.rules.config import RuleOverride
from edge_agent.rules.lifecycle import Report, RuleState, Timing, step
from edge_agent.rules.series import PointSeries
from edge_agent.rules.store import RuleStore
from edge_agent.sources.base import Reading

log = logging.getLogger(__name__)

#: while a raised threshold is active it clears only this far past the threshold (hysteresis)
_HYSTERESIS_SIGN = {Comparison.GT: -1, Comparison.GE: -1, Comparison.LT: 1, Comparison.LE: 1}
SEVERITY_RANK = {Severity.I: 0, Severity.II: 1, Severity.III: 2, Severity.IV: 3}
SOURCE_RULE = "source_offline"


class RuleConfigError(ValueError):
    """A site rule override does not make a valid rule; the message names the field."""


@dataclass(frozen=True)
class RuleDevice:
    """A device as the rule engine sees it: where it is and which source reaches it."""

    device: str
    room: str
    profile: Profile
    source: str


@dataclass(frozen=True)
class Firing:
    """An event to queue, with what local actions match on."""

    event: Event
    report: Report
    device: str
    room: str


@dataclass(frozen=True)
class _Outcome:
    holds: bool | None
    value: float = 0.0
    threshold: float = 0.0


@dataclass
class _DeviceRules:
    spec: RuleDevice
    rules: list[AlertRule]
    series: dict[str, PointSeries] = field(default_factory=dict)
    available: bool | None = None


def compile_rules(device: RuleDevice, overrides: Sequence[RuleOverride]) -> list[AlertRule]:
    """The edge rules of ``device``: its profile's, changed or extended by matching overrides."""
    rules = {rule.id: rule for rule in device.profile.alerts}
    removed: set[str] = set()
    for position, override in enumerate(overrides):
        if not override_applies(device, override):
            continue
        fields = dict(override.rule)
        rule_id = str(fields["id"])
        if fields.pop("enabled", True) is False:
            removed.add(rule_id)
            continue
        base = rules.get(rule_id)
        data = {**base.model_dump(exclude_unset=True), **fields} if base else fields
        data.setdefault("where", RuleSite.EDGE.value)
        where = f"rules[{position}].rule"
        try:
            rule = AlertRule.model_validate(data)
        except ValidationError as exc:
            lines = format_validation_error("-", exc).splitlines()
            raise RuleConfigError(
                "\n".join(line.replace("-: ", f"{where}.", 1) for line in lines)
            ) from None
        unknown = [
            leaf.point
            for leaf in rule.leaves()
            if leaf.point is not None and leaf.point not in device.profile.readable_points
        ]
        if unknown:
            raise RuleConfigError(
                f"{where}.point: device {device.device!r} ({device.profile.id}) has no point"
                f" {unknown[0]!r}"
            )
        rules[rule_id] = rule
        removed.discard(rule_id)
    return [r for r in rules.values() if r.where is RuleSite.EDGE and r.id not in removed]


def override_applies(device: RuleDevice, override: RuleOverride) -> bool:
    """Whether ``override`` concerns ``device``: it matches, and changes a rule of the device's
    profile or adds a complete rule (one with a severity and a standard)."""
    if not override.match.matches(
        device=device.device, room=device.room, profile=device.profile.id
    ):
        return False
    known = any(rule.id == override.rule["id"] for rule in device.profile.alerts)
    return known or {"severity", "standard"} <= override.rule.keys()


class RuleEngine:
    """Evaluates edge rules per device; keeps one lifecycle per (device, rule)."""

    def __init__(
        self,
        devices: Sequence[RuleDevice],
        *,
        calendar: SchoolCalendar | None = None,
        overrides: Sequence[RuleOverride] = (),
        store: RuleStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.calendar = calendar or SchoolCalendar()
        self._store = store
        self._clock = clock
        self._devices: dict[str, _DeviceRules] = {}
        for spec in devices:
            rules = compile_rules(spec, overrides)
            entry = _DeviceRules(spec=spec, rules=rules)
            for rule in rules:
                for leaf in rule.leaves():
                    if leaf.point is not None:
                        keep = max(leaf.over_s, entry.series.get(leaf.point, PointSeries()).keep_s)
                        entry.series[leaf.point] = PointSeries(keep_s=keep)
            self._devices[spec.device] = entry
        self._sources = self._offline_groups()
        self._states: dict[tuple[str, str], RuleState] = {}
        self._restore()

    # -- inputs ---------------------------------------------------------------------------------

    def on_reading(self, reading: Reading) -> list[Firing]:
        """Record a device's values and evaluate its rules at once."""
        entry = self._devices.get(reading.device)
        if entry is None:
            return []
        entry.available = True
        for point, series in entry.series.items():
            value = reading.values.get(point)
            if value is not None:
                series.add(reading.at, value)
        return self._evaluate_device(entry, reading.at)

    def tick(
        self, availability: Mapping[str, bool | None], now: float | None = None
    ) -> list[Firing]:
        """Re-evaluate everything time alone may change; ``availability`` is by device id."""
        now = self._clock() if now is None else now
        firings: list[Firing] = []
        for device, available in availability.items():
            if device in self._devices:
                self._devices[device].available = available
        firings.extend(self._evaluate_sources(now))
        for entry in self._devices.values():
            firings.extend(self._evaluate_device(entry, now))
        return firings

    def save(self) -> None:
        """Write the rolling series (lifecycles are written as they change)."""
        if self._store is None:
            return
        self._store.save_series(
            (device, point, series.to_state())
            for device, entry in self._devices.items()
            for point, series in entry.series.items()
            if series.samples
        )

    # -- views ----------------------------------------------------------------------------------

    def rules_of(self, device: str) -> list[AlertRule]:
        entry = self._devices.get(device)
        return list(entry.rules) if entry is not None else []

    def active(self) -> list[tuple[str, str, RuleState]]:
        """(device or source, rule, state) of every open event."""
        return [(d, r, s) for (d, r), s in sorted(self._states.items()) if s.active]

    # -- evaluation -----------------------------------------------------------------------------

    def _evaluate_device(self, entry: _DeviceRules, now: float) -> list[Firing]:
        folded = self._folded(entry.spec)
        firings = []
        for rule in entry.rules:
            state = self._state(entry.spec.device, rule.id)
            outcome = self._condition(rule, entry, now, active=state.active)
            holds = outcome.holds
            if folded and _has_offline(rule):
                holds = None if state.active else False
            firings.extend(
                self._advance(entry.spec.device, entry.spec.room, rule, state, holds, outcome, now)
            )
        return firings

    def _evaluate_sources(self, now: float) -> list[Firing]:
        firings = []
        for source, (rule, members) in self._sources.items():
            states = [self._devices[m].available for m in members]
            holds: bool | None = all(s is False for s in states)
            if any(s is None for s in states) and not holds:
                holds = None if self._state(source, SOURCE_RULE).active else False
            outcome = _Outcome(holds, value=float(sum(s is False for s in states)))
            firings.extend(
                self._advance(
                    source,
                    "",
                    rule,
                    self._state(source, SOURCE_RULE),
                    holds,
                    outcome,
                    now,
                    devices=members,
                )
            )
        return firings

    def _advance(
        self,
        device: str,
        room: str,
        rule: AlertRule,
        state: RuleState,
        holds: bool | None,
        outcome: _Outcome,
        now: float,
        devices: Sequence[str] = (),
    ) -> list[Firing]:
        before = (state.phase, state.since, state.count, len(state.raises), state.last_value)
        reports = step(
            state,
            holds,
            now,
            Timing(rule.for_s, rule.clear_for_s, rule.flapping.raises, rule.flapping.window_s),
        )
        if self._store is not None and before != (
            state.phase,
            state.since,
            state.count,
            len(state.raises),
            state.last_value,
        ):
            self._store.save_rule_state(device, rule.id, state.to_state())
        return [
            Firing(
                event=_event(rule, device, report, state, outcome, now, devices),
                report=report,
                device=device,
                room=room,
            )
            for report in reports
        ]

    def _condition(
        self, cond: Condition, entry: _DeviceRules, now: float, *, active: bool
    ) -> _Outcome:
        if cond.when is not None and not self.calendar.holds(cond.when, now, entry.spec.room):
            return _Outcome(False)
        kind = cond.kind
        if kind in (ConditionKind.ALL, ConditionKind.ANY):
            parts = [self._condition(c, entry, now, active=active) for c in cond.conditions]
            values = [p.holds for p in parts]
            first = next((p for p in parts if p.holds is not None), parts[0])
            if kind is ConditionKind.ALL:
                holds = False if False in values else (None if None in values else True)
            else:
                holds = True if True in values else (None if None in values else False)
            return _Outcome(holds, first.value, first.threshold)
        if kind is ConditionKind.OFFLINE:
            available = entry.available
            return _Outcome(None if available is None else not available, 0.0 if available else 1.0)
        assert cond.point is not None
        series = entry.series[cond.point]
        if kind is ConditionKind.STALE:
            assert cond.stale_s is not None
            unchanged = series.unchanged_for(now)
            if unchanged is None:
                return _Outcome(None)
            return _Outcome(unchanged >= cond.stale_s, unchanged, cond.stale_s)
        assert cond.op is not None and cond.threshold is not None
        if kind is ConditionKind.RATE:
            value = series.rate_per_min(cond.over_s, now)
        else:
            value = series.stat(cond.stat.value, cond.over_s, now)
        if value is None:
            return _Outcome(None)
        threshold = cond.threshold
        if active and cond.hysteresis:
            threshold += _HYSTERESIS_SIGN.get(cond.op, 0) * cond.hysteresis
        return _Outcome(cond.op.holds(value, threshold), value, cond.threshold)

    # -- offline folding ------------------------------------------------------------------------

    def _offline_groups(self) -> dict[str, tuple[AlertRule, list[str]]]:
        by_source: dict[str, list[tuple[str, AlertRule]]] = {}
        for device, entry in self._devices.items():
            rule = next((r for r in entry.rules if _has_offline(r)), None)
            if rule is not None:
                by_source.setdefault(entry.spec.source, []).append((device, rule))
        groups = {}
        for source, members in by_source.items():
            if len(members) < 2:
                continue
            worst = min((r for _, r in members), key=lambda r: SEVERITY_RANK[r.severity])
            rule = AlertRule(
                id=SOURCE_RULE,
                kind=ConditionKind.OFFLINE,
                severity=worst.severity,
                standard=worst.standard,
                message=f"every device behind {source} is offline (the source is down)",
                where=RuleSite.EDGE,
                for_s=min(r.for_s for _, r in members),
            )
            groups[source] = (rule, [d for d, _ in members])
        return groups

    def _folded(self, spec: RuleDevice) -> bool:
        group = self._sources.get(spec.source)
        if group is None or spec.device not in group[1]:
            return False
        state = self._state(spec.source, SOURCE_RULE)
        return state.active or all(self._devices[m].available is False for m in group[1])

    # -- state ----------------------------------------------------------------------------------

    def _state(self, device: str, rule: str) -> RuleState:
        key = (device, rule)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = RuleState()
        return state

    def _restore(self) -> None:
        if self._store is None:
            return
        for key, data in self._store.rule_states().items():
            self._states[key] = RuleState.from_state(data)
        for (device, point), data in self._store.series().items():
            entry = self._devices.get(device)
            if entry is not None and point in entry.series:
                keep = entry.series[point].keep_s
                entry.series[point] = PointSeries.from_state(keep, data)


def _has_offline(rule: Condition) -> bool:
    return any(leaf.kind is ConditionKind.OFFLINE for leaf in rule.leaves())


def _event(
    rule: AlertRule,
    device: str,
    report: Report,
    state: RuleState,
    outcome: _Outcome,
    now: float,
    devices: Iterable[str],
) -> Event:
    flapping = report is Report.FLAPPING
    message = rule.message
    if flapping:
        message = f"flapping: raised {state.count} times in {rule.flapping.window_s:g} s. {message}"
    return Event(
        rule=rule.id,
        device=device,
        point=rule.first_point or "device",
        state=EventState.CLEARED if report is Report.CLEAR else EventState.RAISED,
        severity=rule.severity,
        value=outcome.value,
        threshold=outcome.threshold,
        standard=rule.standard[:200],
        message=message[:200],
        at=datetime.fromtimestamp(now, UTC),
        count=max(1, state.count),
        flapping=flapping,
        devices=sorted(devices),
    )
