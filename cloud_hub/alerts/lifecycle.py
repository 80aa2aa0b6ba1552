"""The life of one alert: ``open -> acknowledged -> resolved``, as one table.

Rule 1: every change of an alert's state goes through ``next_state`` (hub threshold rules, edge
events, health alarms, the ack/resolve routes and escalation alike); ``cloud_hub.db.alerts`` applies
it to the database and records each transition with who, when and a comment.

- ``raise``: the condition is (again) present. With no active alert for the (gateway, device,
  rule) a new one opens; on an active one it is an occurrence (count and last seen move on).
- ``clear``: the condition went back to normal. The alert stays until a person resolves it, except
  at levels that resolve themselves (``AUTO_RESOLVE_LEVELS``, III and IV by default: a CO2 or
  lighting alert that is over needs nobody); level I and II alerts wait for a person.
- ``acknowledge``: someone took it on (stops escalation).
- ``resolve``: closed, by a person or by the hub for a self-resolving level.
- ``escalate``: an open level I/II alert nobody acknowledged moves up a tier (school -> district
  -> city); it does not change the state.

A transition missing from the table raises ``IllegalTransition`` (the API answers 409).
"""

from __future__ import annotations

from enum import StrEnum

from campus_protocol.messages import Severity


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Transition(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    ESCALATE = "escalate"


#: states an alert is active in: at most one active alert per (gateway, device, rule)
ACTIVE_STATES = frozenset({AlertState.OPEN, AlertState.ACKNOWLEDGED})

TRANSITIONS: dict[AlertState, dict[Transition, AlertState]] = {
    AlertState.OPEN: {
        Transition.RAISE: AlertState.OPEN,
        Transition.CLEAR: AlertState.OPEN,
        Transition.ACKNOWLEDGE: AlertState.ACKNOWLEDGED,
        Transition.RESOLVE: AlertState.RESOLVED,
        Transition.ESCALATE: AlertState.OPEN,
    },
    AlertState.ACKNOWLEDGED: {
        Transition.RAISE: AlertState.ACKNOWLEDGED,
        Transition.CLEAR: AlertState.ACKNOWLEDGED,
        Transition.RESOLVE: AlertState.RESOLVED,
    },
    AlertState.RESOLVED: {},
}
"""``TRANSITIONS[state][transition] -> state``. A raise with no active alert opens a new one
(``OPENED_BY``). The database applies raise and clear in single statements that keep the state,
which is what this table says (checked below at import)."""

OPENED_BY = Transition.RAISE
#: who an alert is in front of, by ``escalation_tier``: it starts at the school
TIERS = ("school", "district", "city")
AUTO_RESOLVE_LEVELS = frozenset({Severity.III, Severity.IV})

assert all(TRANSITIONS[s][Transition.RAISE] is s for s in ACTIVE_STATES)
assert all(TRANSITIONS[s][Transition.CLEAR] is s for s in ACTIVE_STATES)


class IllegalTransition(Exception):
    """``transition`` is not allowed from ``state`` (e.g. acknowledging a resolved alert)."""

    def __init__(self, state: AlertState, transition: Transition) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[state])) or "nothing"
        super().__init__(
            f"cannot {transition.value} an alert that is {state.value} (allowed: {allowed})"
        )
        self.state = state
        self.transition = transition


def next_state(state: AlertState, transition: Transition) -> AlertState:
    """The state after ``transition``, or ``IllegalTransition``."""
    try:
        return TRANSITIONS[state][transition]
    except KeyError:
        raise IllegalTransition(state, transition) from None


def resolves_itself(level: Severity) -> bool:
    """Whether an alert of ``level`` is resolved by the hub when its condition clears."""
    return level in AUTO_RESOLVE_LEVELS
