"""The life of one (device, rule): idle -> pending -> active -> clearing -> idle, and flapping.

Rules of the table:

1. One active event per (device, rule). Raising and clearing are both events.
2. ``for_s`` holds a raise back (``pending``); ``clear_for_s`` holds a clear back (``clearing``).
   A condition that comes back while clearing is a *repeat*: the count goes up and, at most once
   per ``REPEAT_REPORT_S``, a raise with the new count goes out (the hub updates its alert).
3. ``flapping.raises`` raises within ``flapping.window_s`` turn the rule ``flapping``: one event
   says so, then nothing more until the condition has been quiet for ``window_s``; it then clears
   (or, still true, goes back to active with one raise).
4. An unknown condition (no data yet) changes nothing.

``step`` is pure: state in, state and what to report out. ``TRANSITIONS`` lists every legal move;
a move outside it raises ``IllegalTransition`` (a bug of ours, never bad input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    IDLE = "idle"
    PENDING = "pending"
    ACTIVE = "active"
    CLEARING = "clearing"
    FLAPPING = "flapping"


class Report(StrEnum):
    RAISE = "raise"
    REPEAT = "repeat"
    FLAPPING = "flapping"
    CLEAR = "clear"


#: phase -> phases it may move to
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.PENDING, Phase.ACTIVE, Phase.FLAPPING}),
    Phase.PENDING: frozenset({Phase.IDLE, Phase.ACTIVE, Phase.FLAPPING}),
    Phase.ACTIVE: frozenset({Phase.CLEARING, Phase.IDLE}),
    Phase.CLEARING: frozenset({Phase.ACTIVE, Phase.IDLE}),
    Phase.FLAPPING: frozenset({Phase.IDLE, Phase.ACTIVE}),
}
REPEAT_REPORT_S = 60.0


class IllegalTransition(RuntimeError):
    """The rule engine tried a move the lifecycle table does not allow."""


@dataclass(frozen=True)
class Timing:
    for_s: float = 0.0
    clear_for_s: float = 0.0
    flap_raises: int = 4
    flap_window_s: float = 600.0


@dataclass
class RuleState:
    phase: Phase = Phase.IDLE
    since: float = 0.0  # when the current phase began
    count: int = 0  # raises (and repeats) of the current event
    raises: list[float] = field(default_factory=list)  # recent raise times, for flapping
    last_report_at: float = 0.0
    last_value: float = 0.0

    @property
    def active(self) -> bool:
        """Whether an event is open (the hysteresis side of thresholds applies)."""
        return self.phase in (Phase.ACTIVE, Phase.CLEARING, Phase.FLAPPING)

    def to_state(self) -> dict[str, object]:
        data = asdict(self)
        data["phase"] = self.phase.value
        return data

    @classmethod
    def from_state(cls, data: dict[str, object]) -> RuleState:
        raises = data.get("raises")
        return cls(
            phase=Phase(str(data.get("phase", "idle"))),
            since=_float(data.get("since")),
            count=int(_float(data.get("count"))),
            raises=[float(t) for t in raises] if isinstance(raises, list) else [],
            last_report_at=_float(data.get("last_report_at")),
            last_value=_float(data.get("last_value")),
        )


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def step(state: RuleState, holds: bool | None, now: float, timing: Timing) -> list[Report]:
    """Advance ``state`` (in place) for a condition that ``holds`` at ``now``."""
    if holds is None:
        return []
    phase = state.phase
    if phase is Phase.IDLE:
        if not holds:
            return []
        if timing.for_s > 0:
            _move(state, Phase.PENDING, now)
            return []
        return _raise(state, now, timing)
    if phase is Phase.PENDING:
        if not holds:
            _move(state, Phase.IDLE, now)
            return []
        return _raise(state, now, timing) if now - state.since >= timing.for_s else []
    if phase is Phase.ACTIVE:
        if holds:
            return []
        if timing.clear_for_s > 0:
            _move(state, Phase.CLEARING, now)
            return []
        return _clear(state, now)
    if phase is Phase.CLEARING:
        if holds:
            _move(state, Phase.ACTIVE, now)
            state.count += 1
            if now - state.last_report_at >= REPEAT_REPORT_S:
                state.last_report_at = now
                return [Report.REPEAT]
            return []
        return _clear(state, now) if now - state.since >= timing.clear_for_s else []
    # flapping: count the comebacks, report nothing until quiet for the flapping window
    state.raises = [t for t in state.raises if now - t < timing.flap_window_s]
    if holds and state.last_value == 0.0:
        state.count += 1
        state.raises.append(now)
    state.last_value = 1.0 if holds else 0.0
    if state.raises:
        return []
    if holds:
        _move(state, Phase.ACTIVE, now)
        state.last_report_at = now
        return [Report.REPEAT]
    return _clear(state, now)


def _raise(state: RuleState, now: float, timing: Timing) -> list[Report]:
    state.raises = [t for t in state.raises if now - t < timing.flap_window_s] + [now]
    state.last_report_at = now
    if len(state.raises) >= timing.flap_raises:
        _move(state, Phase.FLAPPING, now)
        state.count = len(state.raises)
        state.last_value = 1.0
        return [Report.FLAPPING]
    _move(state, Phase.ACTIVE, now)
    state.count = 1
    return [Report.RAISE]


def _clear(state: RuleState, now: float) -> list[Report]:
    _move(state, Phase.IDLE, now)
    state.last_report_at = now
    return [Report.CLEAR]


def _move(state: RuleState, phase: Phase, now: float) -> None:
    if phase not in TRANSITIONS[state.phase]:
        raise IllegalTransition(f"{state.phase.value} -> {phase.value}")
    state.phase = phase
    state.since = now
