"""GET /api/v1/kpis?level=city|district|school&id=...: the bureau's KPIs beside their 2025
targets, as JSON or (``format=csv``) as a CSV export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from campus_protocol.messages import Identifier
from cloud_hub.api import reported
from cloud_hub.api.deps import (
    CurrentUser,
    NowDep,
    SessionDep,
    SettingsDep,
    deny,
    not_found,
)
from cloud_hub.auth.principal import Principal
from cloud_hub.auth.roles import ScopeLevel
from cloud_hub.federation import city
from cloud_hub.kpis.compute import KpiReport, LessonTimes, Level, compute_kpis
from cloud_hub.kpis.export import kpi_rows, to_csv

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
    settings: SettingsDep,
    level: Level | None = None,
    id: Annotated[Identifier | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> KpisPublic | Response:
    """KPIs of one school, district or city in the caller's scope (without ``level`` and
    ``id``: the caller's own city, district or school). A level wider than the scope is refused
    (403); a place outside it is not found (404), as an unknown one. At a central hub: the
    regional hubs' snapshots (as ``/api/v1/city/kpis``); a school's KPIs are at its regional hub."""
    level, id = place_in_scope(request, user, now, level, id)
    if reported.is_central(settings):
        if level is Level.SCHOOL and (
            hubs := city.regional_hubs(session, scope=user.scope, school_id=id)
        ):
            what = f"school {id!r} KPIs"
            raise reported.not_at_this_tier(request, user=user, now=now, what=what, hubs=hubs)
        report = city.city_kpis(session, level=level, id=id, scope=user.scope, now=now)
    else:
        report = compute_kpis(
            session,
            level=level,
            id=id,
            scope=user.scope,
            now=now,
            profiles=request.app.state.profiles,
            lessons=LessonTimes.from_settings(settings.kpi),
        )
    if report is None:
        raise not_found(request, user=user, now=now, what=f"{level.value} {id!r}")
    return kpi_response(report, format=format, filename=f"kpis-{level.value}-{id}-{now:%Y%m%d}.csv")


def place_in_scope(
    request: Request, user: Principal, now: datetime, level: Level | None, id: str | None
) -> tuple[Level, str]:
    """The place asked for, or (neither given) the caller's own; 422 for only one of the two, 403
    (audited) for a level wider than the caller's scope."""
    if level is None and id is None:
        level, id = Level(user.scope.level.value), user.scope.id
    if level is None or id is None:
        raise HTTPException(422, "give level and id together (or neither: your own scope)")
    if _BREADTH[ScopeLevel(level.value)] > _BREADTH[user.scope.level]:
        deny(request, now=now, status=403, reason=f"{level.value} KPIs need a wider scope",
             actor=user)  # fmt: skip
    return level, id


def kpi_response(report: KpiReport, *, format: str, filename: str) -> KpisPublic | Response:
    """The report as JSON, or as a CSV download named ``filename``."""
    if format == "csv":
        return Response(
            to_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return KpisPublic(
        level=report.level,
        id=report.id,
        at=report.at,
        schools=report.schools,
        kpis=[KpiPublic.model_validate(row) for row in kpi_rows(report)],
    )
