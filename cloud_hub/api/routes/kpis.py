"""GET /api/v1/kpis?level=city|district|school&id=...: the bureau's KPIs beside their 2025
targets, as JSON or (``format=csv``) as a CSV export."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from campus_protocol.messages import Identifier
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, deny
from cloud_hub.auth.roles import ScopeLevel
from cloud_hub.kpis.compute import Level, compute_kpis, kpi_rows

router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])

_BREADTH = {ScopeLevel.SCHOOL: 0, ScopeLevel.DISTRICT: 1, ScopeLevel.CITY: 2}


class KpiPublic(BaseModel):
    kpi: str
    name: str
    value: float | None
    unit: str
    numerator: float
    denominator: float
    target_2025: float | None
    meets_target: bool | None
    target_source: str
    measures: str


class KpisPublic(BaseModel):
    level: Level
    id: str
    at: datetime
    schools: int
    kpis: list[KpiPublic]


@router.get("", response_model=KpisPublic, responses={200: {"content": {"text/csv": {}}}})
def get_kpis(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    now: NowDep,
    level: Level,
    id: Annotated[Identifier, Query()],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> KpisPublic | Response:
    """KPIs of one school, district or city in the caller's scope: a level wider than the
    scope is refused (403); a place outside it is not found (404), as an unknown one."""
    if _BREADTH[ScopeLevel(level.value)] > _BREADTH[user.scope.level]:
        deny(request, now=now, status=403, reason=f"{level.value} KPIs need a wider scope",
             actor=user)  # fmt: skip
    report = compute_kpis(
        session,
        level=level,
        id=id,
        scope=user.scope,
        now=now,
        profiles=request.app.state.profiles,
    )
    if report is None:
        raise HTTPException(404, f"no {level.value} {id!r} in your scope")
    rows = list(kpi_rows(report))
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        filename = f"kpis-{level.value}-{id}-{now:%Y%m%d}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return KpisPublic(
        level=level,
        id=id,
        at=report.at,
        schools=report.schools,
        kpis=[KpiPublic.model_validate(row) for row in rows],
    )
