"""GET /api/v1/alerts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from campus_protocol.messages import Severity
from cloud_hub.api.deps import CurrentUser, SessionDep
from cloud_hub.api.schemas import AlertPublic, AlertsPublic, IdQuery
from cloud_hub.db import alerts
from cloud_hub.db.models import AlertState

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=AlertsPublic)
def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    state: AlertState | None = None,
    school_id: IdQuery = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> AlertsPublic:
    """Alerts newest first; ``count`` is the number matching, ``data`` at most ``limit`` of them."""
    rows, total = alerts.list_alerts(
        session,
        scope=user.scope,
        state=state,
        school_id=school_id,
        severity=severity.value if severity is not None else None,
        limit=limit,
    )
    return AlertsPublic(
        data=[AlertPublic.model_validate(r, from_attributes=True) for r in rows], count=total
    )
