"""Alerts: which are active, open, clear, list."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.orm import Session

from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import Alert, AlertSource, AlertState, Gateway


class AlertKey(NamedTuple):
    """What identifies one alert stream: at most one alert per key is active at a time."""

    gateway_id: str
    device: str
    rule: str
    source: AlertSource


def _matches(key: AlertKey) -> tuple[ColumnElement[bool], ...]:
    return (
        Alert.gateway_id == key.gateway_id,
        Alert.device == key.device,
        Alert.rule == key.rule,
        Alert.source == key.source.value,
        Alert.state == AlertState.ACTIVE.value,
    )


def active_alert_keys(session: Session, *, gateway_ids: Collection[str]) -> set[AlertKey]:
    """The keys with an active alert on any of ``gateway_ids`` (one query for a whole batch)."""
    if not gateway_ids:
        return set()
    query = select(Alert.gateway_id, Alert.device, Alert.rule, Alert.source).where(
        Alert.gateway_id.in_(gateway_ids), Alert.state == AlertState.ACTIVE.value
    )
    return {
        AlertKey(gateway, device, rule, AlertSource(source))
        for gateway, device, rule, source in session.execute(query)
    }


def open_alert(
    session: Session,
    *,
    key: AlertKey,
    point: str,
    severity: str,
    at: datetime,
    value: float,
    threshold: float,
    standard: str,
    message: str,
) -> None:
    """Insert an active alert; its school is the gateway's at this moment."""
    school = select(Gateway.school_id).where(Gateway.id == key.gateway_id).scalar_subquery()
    session.execute(
        insert(Alert).values(
            school_id=school,
            gateway_id=key.gateway_id,
            device=key.device,
            point=point,
            rule=key.rule,
            severity=severity,
            state=AlertState.ACTIVE.value,
            source=key.source.value,
            opened_at=at,
            value=value,
            threshold=threshold,
            standard=standard[:200],
            message=message[:500],
        )
    )


def clear_alerts(session: Session, *, key: AlertKey, at: datetime) -> None:
    """Clear whatever is active for ``key`` right now (nothing when another worker did already)."""
    session.execute(
        update(Alert)
        .where(*_matches(key))
        .values(state=AlertState.CLEARED.value, cleared_at=at)
        .execution_options(synchronize_session=False)
    )


def list_alerts(
    session: Session,
    *,
    scope: Scope | None = None,
    state: AlertState | None = None,
    school_id: str | None = None,
    severity: str | None = None,
    limit: int = 1000,
) -> tuple[list[Alert], int]:
    """Newest first in ``scope``, at most ``limit``; also returns how many match in total."""
    conditions = [] if scope is None else [scope.schools(Alert.school_id)]
    if state is not None:
        conditions.append(Alert.state == state.value)
    if school_id is not None:
        conditions.append(Alert.school_id == school_id)
    if severity is not None:
        conditions.append(Alert.severity == severity)
    total = session.scalar(select(func.count()).select_from(Alert).where(*conditions)) or 0
    query = select(Alert).where(*conditions).order_by(Alert.opened_at.desc(), Alert.id.desc())
    return list(session.scalars(query.limit(limit))), total
