"""The audit log: append an entry (in the caller's transaction, or its own), and read it back.

Nothing here updates or deletes an entry, and the database refuses it (triggers on the table).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.auth.models import AuditEntry
from cloud_hub.auth.principal import Principal
from cloud_hub.db.base import write_transaction


class Result(StrEnum):
    OK = "ok"
    DENIED = "denied"  # authentication or permission refused, rate limited
    FAILED = "failed"  # allowed, but it could not be done (invalid input, conflict)
    NOT_FOUND = "not_found"  # the target does not exist in the actor's scope


def record(
    session: Session,
    *,
    actor: Principal | str,
    action: str,
    result: Result,
    at: datetime,
    target: str = "",
    source: str = "",
    detail: str = "",
) -> None:
    """Append one entry to ``session``'s transaction (committed with the change it describes)."""
    if isinstance(actor, Principal):
        name, role, source = actor.username, actor.role.value, source or actor.source
    else:
        name, role = actor, ""
    session.add(
        AuditEntry(
            at=at,
            actor=name[:100],
            role=role,
            action=action[:64],
            target=target[:200],
            result=result.value,
            source=source[:64],
            detail=detail[:500],
        )
    )


def record_now(sessions: sessionmaker[Session], **entry: object) -> None:
    """Append one entry in a transaction of its own (a denial: no change to commit with it)."""
    with write_transaction(sessions) as session:
        record(session, **entry)  # type: ignore[arg-type]


def list_entries(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    result: Result | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> tuple[list[AuditEntry], int]:
    """Newest first, at most ``limit`` (``before_id`` pages back); also how many match in total."""
    conditions = []
    if actor is not None:
        conditions.append(AuditEntry.actor == actor)
    if action is not None:
        conditions.append(AuditEntry.action == action)
    if result is not None:
        conditions.append(AuditEntry.result == result.value)
    if since is not None:
        conditions.append(AuditEntry.at >= since)
    if until is not None:
        conditions.append(AuditEntry.at < until)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    if before_id is not None:
        conditions.append(AuditEntry.id < before_id)
    query = select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(query)), total


def count_since(
    session: Session,
    *,
    action: str,
    result: Result,
    since: datetime,
    target: str | None = None,
    source: str | None = None,
) -> int:
    """How many ``action`` entries with ``result`` since ``since`` for a target or a source."""
    conditions = [AuditEntry.action == action, AuditEntry.result == result.value]
    conditions.append(AuditEntry.at >= since)
    if target is not None:
        conditions.append(AuditEntry.target == target)
    if source is not None:
        conditions.append(AuditEntry.source == source)
    return session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
