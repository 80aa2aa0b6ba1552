"""What changed since a cursor: alert transitions and status changes, for the live stream.

Both are rows written in the same transaction as the change itself (``AlertChange``,
``StatusChange``), so every hub process serving a stream sees what every ingest worker did, in
commit order of ids, and a client that reconnects with its last cursor misses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import Alert, AlertChange, Gateway, StatusChange


@dataclass(frozen=True)
class Cursor:
    """The last alert change and status change a reader has seen."""

    alert: int = 0
    status: int = 0

    def __str__(self) -> str:
        return f"{self.alert}-{self.status}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """``"<alert>-<status>"``, or None when absent or malformed."""
        if not text:
            return None
        alert, _, status = text.partition("-")
        if not (alert.isdigit() and status.isdigit()):
            return None
        return cls(int(alert), int(status))


@dataclass(frozen=True)
class FeedItem:
    kind: str  # "alert" | "status"
    cursor: Cursor  # the cursor after this item
    data: dict[str, Any]


def cursor_now(session: Session) -> Cursor:
    """The cursor past everything stored now."""
    alert = session.scalar(select(func.max(AlertChange.id))) or 0
    status = session.scalar(select(func.max(StatusChange.id))) or 0
    return Cursor(alert, status)


def read_since(
    session: Session, *, cursor: Cursor, scope: Scope, limit: int = 500
) -> tuple[list[FeedItem], Cursor]:
    """Changes in ``scope`` after ``cursor`` (alerts first, each kind in id order) and the cursor
    after them; out-of-scope rows move the cursor on without being returned."""
    items: list[FeedItem] = []
    alert_end = session.scalar(select(func.max(AlertChange.id))) or 0
    status_end = session.scalar(select(func.max(StatusChange.id))) or 0
    changes = session.execute(
        select(AlertChange, Alert)
        .join(Alert, Alert.id == AlertChange.alert_id)
        .where(
            AlertChange.id > cursor.alert,
            AlertChange.id <= alert_end,
            scope.schools(AlertChange.school_id),
        )
        .order_by(AlertChange.id)
        .limit(limit)
    ).all()
    alert_cursor = changes[-1][0].id if len(changes) == limit else max(alert_end, cursor.alert)
    for change, alert in changes:
        items.append(
            FeedItem(
                "alert",
                Cursor(change.id, cursor.status),
                {
                    "alert_id": alert.id,
                    "transition": change.transition,
                    "from_state": change.from_state,
                    "to_state": change.to_state,
                    "actor": change.actor,
                    "comment": change.comment,
                    "at": _iso(change.at),
                    "school_id": alert.school_id,
                    "gateway_id": alert.gateway_id,
                    "device": alert.device,
                    "rule": alert.rule,
                    "severity": alert.severity,
                    "occurrences": alert.occurrences,
                },
            )
        )
    statuses = session.scalars(
        select(StatusChange)
        .where(
            StatusChange.id > cursor.status,
            StatusChange.id <= status_end,
            scope.schools(StatusChange.school_id),
        )
        .order_by(StatusChange.id)
        .limit(limit)
    ).all()
    status_cursor = statuses[-1].id if len(statuses) == limit else max(status_end, cursor.status)
    for row in statuses:
        items.append(
            FeedItem(
                "status",
                Cursor(alert_cursor, row.id),
                {
                    "at": _iso(row.at),
                    "school_id": row.school_id,
                    "gateway_id": row.gateway_id,
                    "device": row.device or None,
                    "status": row.status,
                    "reason": row.reason,
                },
            )
        )
    return items, Cursor(alert_cursor, status_cursor)


def record_status(
    session: Session,
    *,
    gateway_id: str,
    device: str = "",
    status: str,
    at: datetime,
    reason: str = "",
) -> None:
    """Note that a gateway (or one of its devices) changed status."""
    school = select(Gateway.school_id).where(Gateway.id == gateway_id).scalar_subquery()
    session.execute(
        insert(StatusChange).values(
            at=at,
            school_id=school,
            gateway_id=gateway_id,
            device=device,
            status=status,
            reason=reason[:200],
        )
    )


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
