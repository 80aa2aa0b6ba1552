"""The alert lifecycle: the transition table, and the database following it in any order of
raises, clears, acknowledgements, resolutions and escalations (a Hypothesis state machine checked
against an in-memory model)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from campus_protocol.messages import Severity
from cloud_hub.alerts.lifecycle import (
    ACTIVE_STATES,
    TRANSITIONS,
    AlertState,
    IllegalTransition,
    Transition,
    next_state,
)
from cloud_hub.db import alerts, topology
from cloud_hub.db.alerts import Alarm, AlertKey
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker
from cloud_hub.db.models import Alert, AlertSource

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_resolved_is_final_and_every_active_state_can_be_resolved() -> None:
    assert TRANSITIONS[AlertState.RESOLVED] == {}
    for state in ACTIVE_STATES:
        assert next_state(state, Transition.RESOLVE) is AlertState.RESOLVED
    for transition in Transition:
        with pytest.raises(IllegalTransition, match="resolved"):
            next_state(AlertState.RESOLVED, transition)


def test_only_an_open_alert_is_acknowledged_or_escalated() -> None:
    assert next_state(AlertState.OPEN, Transition.ACKNOWLEDGE) is AlertState.ACKNOWLEDGED
    with pytest.raises(IllegalTransition, match="cannot acknowledge an alert that is acknowledged"):
        next_state(AlertState.ACKNOWLEDGED, Transition.ACKNOWLEDGE)
    with pytest.raises(IllegalTransition):
        next_state(AlertState.ACKNOWLEDGED, Transition.ESCALATE)


#: two alert streams on one gateway: a level II one (a person resolves it) and a level IV one
#: (resolves itself when its condition clears)
KEYS = {
    AlertKey("gw-1", "gas-1", "gas_above_alarm_1"): Severity.II,
    AlertKey("gw-1", "co2-1", "co2_above_hygiene_limit"): Severity.IV,
}
OPERATOR_ACTIONS = (Transition.ACKNOWLEDGE, Transition.RESOLVE, Transition.ESCALATE)


@dataclass
class ModelAlert:
    key: AlertKey
    state: AlertState = AlertState.OPEN
    occurrences: int = 1
    cleared: bool = False


class AlertMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="alerts-sm-"))
        self.engine = make_engine(f"sqlite:///{self.dir / 'hub.db'}")
        create_schema(self.engine)
        self.sessions = make_sessionmaker(self.engine)
        with self.sessions.begin() as session:
            topology.ensure_gateway(session, node="gw-1")
        self.model: dict[int, ModelAlert] = {}
        self.clock = T0

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _active(self, key: AlertKey) -> ModelAlert | None:
        found = [a for a in self.model.values() if a.key == key and a.state in ACTIVE_STATES]
        assert len(found) <= 1
        return found[0] if found else None

    @rule(key=st.sampled_from(sorted(KEYS)))
    def condition_appears(self, key: AlertKey) -> None:
        alarm = Alarm(
            key=key,
            source=AlertSource.EDGE,
            point="p",
            severity=KEYS[key],
            at=self._tick(),
            value=2.0,
            threshold=1.0,
        )
        with self.sessions.begin() as session:
            change = alerts.raise_alert(session, alarm=alarm, actor="gateway:gw-1")
        active = self._active(key)
        if active is None:
            assert change.from_state is None
            self.model[change.alert_id] = ModelAlert(key)
        else:
            active.occurrences += 1
            active.cleared = False

    @rule(key=st.sampled_from(sorted(KEYS)))
    def condition_clears(self, key: AlertKey) -> None:
        with self.sessions.begin() as session:
            alerts.clear_alert(session, key=key, at=self._tick(), actor="gateway:gw-1")
        active = self._active(key)
        if active is not None and not active.cleared:
            active.cleared = True
            if KEYS[key] in (Severity.III, Severity.IV):
                active.state = AlertState.RESOLVED

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), transition=st.sampled_from(OPERATOR_ACTIONS))
    def operator_acts(self, data: st.DataObject, transition: Transition) -> None:
        alert_id = data.draw(st.sampled_from(sorted(self.model)))
        expected = TRANSITIONS[self.model[alert_id].state].get(transition)
        with self.sessions() as session:
            alert = alerts.find_for_change(session, alert_id=alert_id, scope=None)
            assert alert is not None
            try:
                alerts.apply(
                    session, alert=alert, transition=transition, actor="ops", at=self._tick()
                )
            except IllegalTransition:
                assert expected is None
                session.rollback()
                return
            session.commit()
        assert expected is not None
        self.model[alert_id].state = expected

    @invariant()
    def database_matches_the_model(self) -> None:
        with self.sessions() as session:
            rows = {a.id: a for a in session.scalars(select(Alert))}
            changes = alerts.changes_of(session, alert_ids=rows)
        assert set(rows) == set(self.model)
        for alert_id, expected in self.model.items():
            row = rows[alert_id]
            assert (row.state, row.occurrences, row.cleared_at is not None) == (
                expected.state.value,
                expected.occurrences,
                expected.cleared,
            )
            # the recorded changes are a path through the table ending in the current state
            state = None
            for change in changes[alert_id]:
                assert (change.from_state and AlertState(change.from_state)) == state
                assert state is None or next_state(state, Transition(change.transition)) is (
                    AlertState(change.to_state)
                )
                state = AlertState(change.to_state)
            assert state is AlertState(row.state)

    def teardown(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)


AlertMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_alert_lifecycle_in_the_database_follows_the_table = AlertMachine.TestCase
