"""GET /api/v1/alerts, GET /api/v1/alerts/{id}, POST /api/v1/alerts/{id}/ack and …/resolve."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from sqlalchemy.orm import Session

from campus_protocol.messages import Severity
from cloud_hub.alerts.lifecycle import (
    ACTIVE_STATES,
    TIERS,
    AlertState,
    IllegalTransition,
    Transition,
)
from cloud_hub.api import reported
from cloud_hub.api.deps import (
    CurrentUser,
    NowDep,
    Operator,
    QueryTime,
    SessionDep,
    SettingsDep,
    not_found,
)
from cloud_hub.api.schemas import (
    AlertChangePublic,
    AlertComment,
    AlertDetail,
    AlertPublic,
    AlertsPublic,
    IdQuery,
    ReportedAlertsPublic,
)
from cloud_hub.auth import audit
from cloud_hub.auth.principal import Principal
from cloud_hub.db import alerts
from cloud_hub.db.base import begin_write
from cloud_hub.db.models import Alert
from cloud_hub.federation import city

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

#: an alert id as a path segment: within the database's integer range (422 past it, not 500)
AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class StateQuery(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ACTIVE = "active"  # open or acknowledged


def to_public(alert: Alert) -> AlertPublic:
    return AlertPublic.model_validate(
        {
            **{name: getattr(alert, name) for name in _COLUMNS},
            "level": reported.level_public(Severity(alert.severity)),
            "escalated_to": TIERS[min(alert.escalation_tier, len(TIERS) - 1)],
        }
    )


_COLUMNS = [name for name in AlertPublic.model_fields if name not in {"level", "escalated_to"}]


def to_detail(session: Session, alert: Alert) -> AlertDetail:
    changes = alerts.changes_of(session, alert_ids=[alert.id])[alert.id]
    return AlertDetail(
        **to_public(alert).model_dump(),
        changes=[AlertChangePublic.model_validate(c, from_attributes=True) for c in changes],
    )


@router.get("", response_model=AlertsPublic | ReportedAlertsPublic)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    state: StateQuery | None = None,
    district_id: IdQuery = None,
    school_id: IdQuery = None,
    level: Severity | None = None,
    since: Annotated[
        QueryTime | None, Query(alias="from", description="opened at or after")
    ] = None,
    until: Annotated[QueryTime | None, Query(alias="to", description="opened before")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AlertsPublic | ReportedAlertsPublic:
    """Alerts newest first; ``count`` is how many match, ``data`` the page from ``offset``. At a
    central hub: the regional hubs' alerts as their forwarded transitions say."""
    if reported.is_central(settings):
        return reported.alerts(
            session,
            scope=user.scope,
            state=state.value if state is not None else None,
            district_id=district_id,
            school_id=school_id,
            level=level,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    states = () if state is None else _states(state)
    where = alerts.AlertFilter(
        states=states,
        district_id=district_id,
        school_id=school_id,
        level=level,
        since=since,
        until=until,
    )
    rows, total = alerts.list_alerts(
        session, scope=user.scope, where=where, limit=limit, offset=offset
    )
    return AlertsPublic(data=[to_public(r) for r in rows], count=total)


def _states(state: StateQuery) -> frozenset[AlertState]:
    return ACTIVE_STATES if state is StateQuery.ACTIVE else frozenset({AlertState(state.value)})


def kept_here(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    alert_id: AlertId,
) -> None:
    """At a central hub an alert's record and its actions are at its regional hub: a 404 that
    names it (an id no regional hub reported in scope: the plain 404)."""
    if not reported.is_central(settings):
        return
    hubs = city.regional_hubs(session, scope=user.scope, alert_id=alert_id)
    if not hubs:
        raise not_found(request, user=user, now=now, what=f"alert {alert_id}")
    raise reported.not_at_this_tier(
        request, user=user, now=now, what=f"alert {alert_id}", hubs=hubs
    )


AtThisTier = [Depends(kept_here)]


@router.get("/{alert_id}", response_model=AlertDetail, dependencies=AtThisTier)
def get_alert(
    request: Request, session: SessionDep, user: CurrentUser, now: NowDep, alert_id: AlertId
) -> AlertDetail:
    """One alert with every transition it went through."""
    alert = alerts.get_alert(session, alert_id=alert_id, scope=user.scope)
    if alert is None:
        raise not_found(request, user=user, now=now, what=f"alert {alert_id}")
    return to_detail(session, alert)


CommentBody = Annotated[AlertComment | None, Body()]


@router.post("/{alert_id}/ack", response_model=AlertDetail, dependencies=AtThisTier)
def acknowledge(
    session: SessionDep, user: Operator, now: NowDep, alert_id: AlertId, body: CommentBody = None
) -> AlertDetail:
    """Take the alert on (stops its escalation); 409 unless it is open."""
    return _change(session, user, now, alert_id, Transition.ACKNOWLEDGE, body)


@router.post("/{alert_id}/resolve", response_model=AlertDetail, dependencies=AtThisTier)
def resolve(
    session: SessionDep, user: Operator, now: NowDep, alert_id: AlertId, body: CommentBody = None
) -> AlertDetail:
    """Close the alert; 409 when it is resolved already."""
    return _change(session, user, now, alert_id, Transition.RESOLVE, body)


def _change(
    session: Session,
    user: Principal,
    now: datetime,
    alert_id: int,
    transition: Transition,
    body: AlertComment | None,
) -> AlertDetail:
    comment = body.comment if body is not None else ""
    action = f"alert.{'ack' if transition is Transition.ACKNOWLEDGE else transition.value}"
    target = f"alert:{alert_id}"
    begin_write(session)
    alert = alerts.find_for_change(session, alert_id=alert_id, scope=user.scope)
    if alert is None:
        session.rollback()
        _audit(session, user, action, target, audit.Result.NOT_FOUND, now, comment)
        raise HTTPException(404, f"alert {alert_id} not found")
    try:
        alerts.apply(
            session,
            alert=alert,
            transition=transition,
            actor=user.username,
            at=now,
            comment=comment,
        )
    except IllegalTransition as exc:
        session.rollback()
        _audit(session, user, action, target, audit.Result.FAILED, now, str(exc))
        raise HTTPException(409, str(exc)) from None
    _audit(session, user, action, target, audit.Result.OK, now, comment)
    return to_detail(session, alert)


def _audit(
    session: Session,
    user: Principal,
    action: str,
    target: str,
    result: audit.Result,
    now: datetime,
    detail: str,
) -> None:
    audit.record(
        session, actor=user, action=action, target=target, result=result, at=now, detail=detail
    )
    session.commit()
