"""Alerts: open, find active, clear, list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_hub.db.models import Alert, AlertSource, AlertState


def active_alert(
    session: Session, *, gateway_id: str, device: str, rule: str, source: AlertSource
) -> Alert | None:
    """The active alert of ``rule`` on ``device``, if any (there is at most one)."""
    query = select(Alert).where(
        Alert.gateway_id == gateway_id,
        Alert.device == device,
        Alert.rule == rule,
        Alert.source == source.value,
        Alert.state == AlertState.ACTIVE.value,
    )
    return session.scalars(query.order_by(Alert.id).limit(1)).first()


def open_alert(
    session: Session,
    *,
    school_id: str | None,
    gateway_id: str,
    device: str,
    point: str,
    rule: str,
    severity: str,
    source: AlertSource,
    at: datetime,
    value: float,
    threshold: float,
    standard: str,
    message: str,
) -> Alert:
    alert = Alert(
        school_id=school_id,
        gateway_id=gateway_id,
        device=device,
        point=point,
        rule=rule,
        severity=severity,
        state=AlertState.ACTIVE.value,
        source=source.value,
        opened_at=at,
        value=value,
        threshold=threshold,
        standard=standard[:200],
        message=message[:500],
    )
    session.add(alert)
    return alert


def clear_alert(alert: Alert, *, at: datetime) -> None:
    alert.state = AlertState.CLEARED.value
    alert.cleared_at = at


def list_alerts(
    session: Session,
    *,
    state: AlertState | None = None,
    school_id: str | None = None,
    severity: str | None = None,
    limit: int = 1000,
) -> tuple[list[Alert], int]:
    """Newest first, at most ``limit``; also returns how many match in total."""
    conditions = []
    if state is not None:
        conditions.append(Alert.state == state.value)
    if school_id is not None:
        conditions.append(Alert.school_id == school_id)
    if severity is not None:
        conditions.append(Alert.severity == severity)
    total = session.scalar(select(func.count()).select_from(Alert).where(*conditions)) or 0
    query = select(Alert).where(*conditions).order_by(Alert.opened_at.desc(), Alert.id.desc())
    return list(session.scalars(query.limit(limit))), total
