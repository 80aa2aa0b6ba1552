"""Alerts in the database: raise (one atomic upsert), clear, acknowledge, resolve, escalate, list.

Every state change follows ``cloud_hub.alerts.lifecycle.TRANSITIONS`` and is recorded as an
``AlertChange`` row (who, when, comment) in the caller's transaction. A raise never checks before
it inserts: ``INSERT … ON CONFLICT (gateway_id, device, rule) WHERE state <> 'resolved' DO UPDATE``
on the partial unique index, so two workers raising the same alert at once end with one alert
whose occurrence count is two, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, bindparam, case, func, select, text, update
from sqlalchemy.orm import Session

from campus_protocol.messages import Severity
from cloud_hub.alerts.lifecycle import (
    ACTIVE_STATES,
    AlertState,
    Transition,
    next_state,
    resolves_itself,
)
from cloud_hub.auth.scope import Scope
from cloud_hub.db.base import dialect_insert
from cloud_hub.db.models import ALERT_ACTIVE_SQL, Alert, AlertChange, AlertSource, Gateway, School

HUB_ACTOR = "hub"


class AlertKey(NamedTuple):
    """What identifies one alert stream: at most one alert per key is active at a time."""

    gateway_id: str
    device: str
    rule: str


@dataclass(frozen=True, kw_only=True)
class Alarm:
    """A condition present now: what a raise carries."""

    key: AlertKey
    source: AlertSource
    point: str
    severity: Severity
    at: datetime
    value: float
    threshold: float
    standard: str = ""
    message: str = ""


def _active(key: AlertKey) -> tuple[ColumnElement[bool], ...]:
    return (
        Alert.gateway_id == key.gateway_id,
        Alert.device == key.device,
        Alert.rule == key.rule,
        Alert.state != AlertState.RESOLVED.value,
    )


def active_conditions(session: Session, *, gateway_ids: Collection[str]) -> dict[AlertKey, bool]:
    """Active alerts on ``gateway_ids`` by key: True while the condition is present, False once it
    cleared (one query for a whole ingest batch)."""
    if not gateway_ids:
        return {}
    rows = session.connection().execute(_ACTIVE, {"gateways": list(gateway_ids)})
    return {
        AlertKey(gateway, device, rule): cleared is None for gateway, device, rule, cleared in rows
    }


# built once (read by every ingest batch); run on the connection, past the ORM's per-query work
_ACTIVE = select(Alert.gateway_id, Alert.device, Alert.rule, Alert.cleared_at).where(
    Alert.gateway_id.in_(bindparam("gateways", expanding=True)),
    Alert.state != AlertState.RESOLVED.value,
)


def raise_alert(session: Session, *, alarm: Alarm, actor: str) -> AlertChange:
    """Open an alert for ``alarm.key``, or count another occurrence of the active one, in one
    statement; returns the recorded change (``from_state`` None when it opened)."""
    school = select(Gateway.school_id).where(Gateway.id == alarm.key.gateway_id).scalar_subquery()
    insert = dialect_insert(session, Alert).values(
        school_id=school,
        gateway_id=alarm.key.gateway_id,
        device=alarm.key.device,
        rule=alarm.key.rule,
        point=alarm.point,
        severity=alarm.severity.value,
        state=AlertState.OPEN.value,
        source=alarm.source.value,
        opened_at=alarm.at,
        last_seen_at=alarm.at,
        occurrences=1,
        value=alarm.value,
        threshold=alarm.threshold,
        standard=alarm.standard[:200],
        message=alarm.message[:500],
        acknowledged_by="",
        resolved_by="",
        escalation_tier=0,
    )
    excluded = insert.excluded
    upsert = insert.on_conflict_do_update(
        index_elements=["gateway_id", "device", "rule"],
        index_where=text(ALERT_ACTIVE_SQL),
        set_={
            "occurrences": Alert.occurrences + 1,
            "last_seen_at": case(
                (excluded.last_seen_at > Alert.last_seen_at, excluded.last_seen_at),
                else_=Alert.last_seen_at,
            ),
            "value": excluded.value,
            "cleared_at": None,
        },
    ).returning(Alert.id, Alert.occurrences, Alert.state, Alert.school_id)
    alert_id, occurrences, state, school_id = session.execute(upsert).one()
    opened = occurrences == 1
    return _record(
        session,
        alert_id=alert_id,
        school_id=school_id,
        transition=Transition.RAISE,
        from_state=None if opened else AlertState(state),
        to_state=AlertState(state),
        actor=actor,
        at=alarm.at,
        comment=f"value {alarm.value:g} (threshold {alarm.threshold:g})",
    )


def clear_alert(session: Session, *, key: AlertKey, at: datetime, actor: str) -> list[AlertChange]:
    """The condition of ``key`` went back to normal: mark the active alert cleared, and resolve
    it when its level resolves itself. Nothing when no alert is active or it is cleared already."""
    query = select(Alert).where(*_active(key), Alert.cleared_at.is_(None)).with_for_update()
    alert = session.scalar(query)
    if alert is None:
        return []
    alert.cleared_at = at
    changes = [apply(session, alert=alert, transition=Transition.CLEAR, actor=actor, at=at)]
    if resolves_itself(Severity(alert.severity)):
        comment = "condition cleared; this level resolves itself"
        changes.append(
            apply(
                session,
                alert=alert,
                transition=Transition.RESOLVE,
                actor=HUB_ACTOR,
                at=at,
                comment=comment,
            )
        )
    return changes


def find_for_change(session: Session, *, alert_id: int, scope: Scope | None) -> Alert | None:
    """Alert ``alert_id`` locked for a change, or None when unknown or out of ``scope``."""
    query = select(Alert).where(Alert.id == alert_id)
    if scope is not None:
        query = query.where(scope.schools(Alert.school_id))
    return session.scalar(query.with_for_update())


def apply(
    session: Session,
    *,
    alert: Alert,
    transition: Transition,
    actor: str,
    at: datetime,
    comment: str = "",
) -> AlertChange:
    """Apply ``transition`` to a locked ``alert`` (``IllegalTransition`` when the table forbids
    it) and record it."""
    before = AlertState(alert.state)
    after = next_state(before, transition)
    alert.state = after.value
    if transition is Transition.ACKNOWLEDGE:
        alert.acknowledged_at, alert.acknowledged_by = at, actor[:100]
    elif transition is Transition.RESOLVE:
        alert.resolved_at, alert.resolved_by = at, actor[:100]
    elif transition is Transition.ESCALATE:
        alert.escalation_tier += 1
        alert.escalated_at = at
    session.flush()
    return _record(
        session,
        alert_id=alert.id,
        school_id=alert.school_id,
        transition=transition,
        from_state=before,
        to_state=after,
        actor=actor,
        at=at,
        comment=comment,
    )


def _record(
    session: Session,
    *,
    alert_id: int,
    school_id: str | None,
    transition: Transition,
    from_state: AlertState | None,
    to_state: AlertState,
    actor: str,
    at: datetime,
    comment: str,
) -> AlertChange:
    change = AlertChange(
        alert_id=alert_id,
        school_id=school_id,
        at=at,
        transition=transition.value,
        from_state=from_state.value if from_state is not None else None,
        to_state=to_state.value,
        actor=actor[:100],
        comment=comment[:500],
    )
    session.add(change)
    session.flush()
    return change


def get_alert(session: Session, *, alert_id: int, scope: Scope | None) -> Alert | None:
    """Alert ``alert_id``, or None when unknown or out of ``scope``."""
    query = select(Alert).where(Alert.id == alert_id)
    if scope is not None:
        query = query.where(scope.schools(Alert.school_id))
    return session.scalar(query)


def changes_of(session: Session, *, alert_ids: Iterable[int]) -> dict[int, list[AlertChange]]:
    """The recorded transitions of each alert, oldest first."""
    ids = list(alert_ids)
    result: dict[int, list[AlertChange]] = defaultdict(list)
    if ids:
        query = select(AlertChange).where(AlertChange.alert_id.in_(ids)).order_by(AlertChange.id)
        for change in session.scalars(query):
            result[change.alert_id].append(change)
    return result


@dataclass(frozen=True, kw_only=True)
class AlertFilter:
    """What ``list_alerts`` selects; ``active`` means open or acknowledged."""

    states: Collection[AlertState] = ()
    district_id: str | None = None
    school_id: str | None = None
    level: Severity | None = None
    since: datetime | None = None  # opened at or after
    until: datetime | None = None  # opened before


ACTIVE = frozenset(ACTIVE_STATES)


def list_alerts(
    session: Session,
    *,
    scope: Scope | None = None,
    where: AlertFilter | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> tuple[list[Alert], int]:
    """Newest first in ``scope``, a page of ``limit`` from ``offset``; also how many match."""
    where = where or AlertFilter()
    conditions = [] if scope is None else [scope.schools(Alert.school_id)]
    if where.states:
        conditions.append(Alert.state.in_([s.value for s in where.states]))
    if where.school_id is not None:
        conditions.append(Alert.school_id == where.school_id)
    if where.district_id is not None:
        in_district = select(School.id).where(School.district_id == where.district_id)
        conditions.append(Alert.school_id.in_(in_district))
    if where.level is not None:
        conditions.append(Alert.severity == where.level.value)
    if where.since is not None:
        conditions.append(Alert.opened_at >= where.since)
    if where.until is not None:
        conditions.append(Alert.opened_at < where.until)
    total = session.scalar(select(func.count()).select_from(Alert).where(*conditions)) or 0
    query = select(Alert).where(*conditions).order_by(Alert.opened_at.desc(), Alert.id.desc())
    return list(session.scalars(query.offset(offset).limit(limit))), total


def assign_school(session: Session, *, gateway_id: str, school_id: str) -> None:
    """Alerts raised before the gateway's first heartbeat said where it is get its school."""
    session.execute(
        update(Alert)
        .where(Alert.gateway_id == gateway_id, Alert.school_id.is_(None))
        .values(school_id=school_id)
    )
    session.execute(
        update(AlertChange)
        .where(
            AlertChange.alert_id.in_(select(Alert.id).where(Alert.gateway_id == gateway_id)),
            AlertChange.school_id.is_(None),
        )
        .values(school_id=school_id)
    )


def active_by_district_and_level(
    session: Session, *, scope: Scope | None
) -> dict[str, dict[str, int]]:
    """Active (open or acknowledged) alerts counted by district and level; every level present."""
    query = (
        select(School.district_id, Alert.severity, func.count())
        .join(School, School.id == Alert.school_id)
        .where(Alert.state != AlertState.RESOLVED.value)
        .group_by(School.district_id, Alert.severity)
    )
    if scope is not None:
        query = query.where(scope.schools(Alert.school_id))
    result: dict[str, dict[str, int]] = {}
    for district_id, level, count in session.execute(query):
        counts = result.setdefault(district_id, {s.value: 0 for s in Severity})
        counts[level] = count
    return result
