"""The central hub's city-wide views (``/api/v1/city/...``), from what regional hubs forward:
districts reporting, schools by status, alerts by level and KPIs. Every route authenticates and
filters by the caller's scope in the database; on a regional hub they answer empty or 404."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from campus_protocol.messages import Identifier
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, not_found
from cloud_hub.api.routes.kpis import KpisPublic, kpi_response, place_in_scope
from cloud_hub.api.schemas import DistrictRef, IdQuery
from cloud_hub.federation import city
from cloud_hub.kpis.compute import Level
from cloud_hub.status import SchoolStatus

router = APIRouter(prefix="/api/v1/city", tags=["city"])


class DistrictReportingPublic(BaseModel):
    id: str
    name: str
    city_id: str
    regional_hub: str
    regional_hub_online: bool | None
    reporting_since: datetime
    last_report_at: datetime
    schools: int
    schools_by_status: dict[str, int]


class DistrictsReportingPublic(BaseModel):
    data: list[DistrictReportingPublic]
    count: int


class CitySchoolPublic(BaseModel):
    id: str
    name: str
    district: DistrictRef
    regional_hub: str
    status: SchoolStatus
    gateways: int
    gateways_online: int
    devices: int
    devices_online: int
    last_seen_at: datetime | None
    reported_at: datetime


class CitySchoolsPublic(BaseModel):
    data: list[CitySchoolPublic]
    count: int
    by_status: dict[str, int]


class AlertLevelsPublic(BaseModel):
    """Alerts not yet resolved, by level (I is the highest), in all and per district."""

    total: dict[str, int]
    by_district: dict[str, dict[str, int]]


@router.get("/districts", response_model=DistrictsReportingPublic)
def list_districts(session: SessionDep, user: CurrentUser) -> DistrictsReportingPublic:
    """Which districts report to this central hub, through which regional hub, since when."""
    found = city.districts(session, scope=user.scope)
    data = [
        DistrictReportingPublic(
            id=d.district_id, name=d.name, city_id=d.city_id, regional_hub=d.regional_hub_id,
            regional_hub_online=d.regional_hub_online, reporting_since=d.first_reported_at,
            last_report_at=d.last_reported_at, schools=d.schools, schools_by_status=d.by_status,
        )
        for d in found
    ]  # fmt: skip
    return DistrictsReportingPublic(data=data, count=len(data))


@router.get("/schools", response_model=CitySchoolsPublic)
def list_schools(
    session: SessionDep,
    user: CurrentUser,
    status: SchoolStatus | None = None,
    district_id: IdQuery = None,
) -> CitySchoolsPublic:
    """Every school as its regional hub last reported it; ``by_status`` counts all of them."""
    every = city.schools(session, scope=user.scope, district_id=district_id)
    by_status = {s.value: 0 for s in SchoolStatus}
    for school in every:
        by_status[school.health.status] = by_status.get(school.health.status, 0) + 1
    chosen = [s for s in every if status is None or s.health.status == status.value]
    data = [
        CitySchoolPublic(
            id=s.health.school_id, name=s.name,
            district=DistrictRef(id=s.health.district_id, name=s.district_name),
            regional_hub=s.health.regional_hub_id, status=SchoolStatus(s.health.status),
            gateways=s.health.gateways, gateways_online=s.health.gateways_online,
            devices=s.health.devices, devices_online=s.health.devices_online,
            last_seen_at=s.health.last_seen_at, reported_at=s.health.reported_at,
        )
        for s in chosen
    ]  # fmt: skip
    return CitySchoolsPublic(data=data, count=len(data), by_status=by_status)


@router.get("/alerts", response_model=AlertLevelsPublic)
def alert_levels(session: SessionDep, user: CurrentUser) -> AlertLevelsPublic:
    """Open alerts of the regional hubs, by level."""
    levels = city.alerts_by_level(session, scope=user.scope)
    return AlertLevelsPublic(total=levels.total, by_district=levels.by_district)


@router.get("/kpis", response_model=KpisPublic, responses={200: {"content": {"text/csv": {}}}})
def city_kpis(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    now: NowDep,
    level: Level | None = None,
    id: Annotated[Identifier | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> KpisPublic | Response:
    """City or district KPIs summed from the regional hubs' newest snapshots (without ``level``
    and ``id``: the caller's own city or district). A level wider than the scope is refused
    (403); a place outside it, or without snapshots, is not found (404), and so is a school (its
    KPIs are at its regional hub)."""
    level, id = place_in_scope(request, user, now, level, id)
    report = city.city_kpis(session, level=level, id=id, scope=user.scope, now=now)
    if report is None:
        raise not_found(request, user=user, now=now, what=f"{level.value} {id!r} KPIs")
    filename = f"city-kpis-{level.value}-{id}-{now:%Y%m%d}.csv"
    return kpi_response(report, format=format, filename=filename)
