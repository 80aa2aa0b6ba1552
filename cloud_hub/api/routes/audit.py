"""GET /api/v1/audit: the append-only audit log, for city administrators (read only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloud_hub.api.deps import CityAdmin, QueryTime, SessionDep
from cloud_hub.api.security_schemas import AuditEntryPublic, AuditPublic
from cloud_hub.auth import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Text = Annotated[str | None, Query(min_length=1, max_length=100)]


@router.get("", response_model=AuditPublic)
def list_audit(
    session: SessionDep,
    user: CityAdmin,
    actor: Text = None,
    action: Text = None,
    result: audit.Result | None = None,
    since: QueryTime | None = None,
    until: QueryTime | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPublic:
    """Entries newest first; page back with ``before_id`` (the last id seen)."""
    rows, total = audit.list_entries(
        session,
        actor=actor,
        action=action,
        result=result,
        since=since,
        until=until,
        limit=limit,
        before_id=before_id,
    )
    return AuditPublic(
        data=[AuditEntryPublic.model_validate(r, from_attributes=True) for r in rows], count=total
    )
