"""GET /api/v1/schools and /api/v1/schools/{school_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request

from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, SettingsDep, not_found
from cloud_hub.api.schemas import (
    DeviceCounts,
    DistrictRef,
    GatewayRef,
    IdQuery,
    SchoolPublic,
    SchoolsPublic,
)
from cloud_hub.db import topology
from cloud_hub.status import SchoolStatus, summarize_school

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])


def to_public(
    view: topology.SchoolTopology, *, now: datetime, offline_after_s: float
) -> SchoolPublic:
    summary = summarize_school(
        gateways=view.gateways, devices=view.devices, now=now, offline_after_s=offline_after_s
    )
    school = view.school
    gateway = None
    if summary.gateway is not None:
        gateway = GatewayRef(
            id=summary.gateway.id,
            status=summary.gateway_status,
            last_seen_at=summary.gateway.last_seen_at,
        )
    return SchoolPublic(
        id=school.id,
        name=school.name,
        district=DistrictRef(id=school.district.id, name=school.district.name),
        city_id=school.district.city_id,
        gateway=gateway,
        status=summary.status,
        devices=DeviceCounts(
            total=summary.devices_total,
            online=summary.devices_online,
            offline=summary.devices_total - summary.devices_online,
        ),
    )


@router.get("", response_model=SchoolsPublic)
def list_schools(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    district_id: IdQuery = None,
    status: SchoolStatus | None = None,
) -> SchoolsPublic:
    """Schools with their gateway, device counts and online | degraded | offline status."""
    views = topology.list_schools(session, scope=user.scope, district_id=district_id)
    schools = [to_public(v, now=now, offline_after_s=settings.offline_after_s) for v in views]
    if status is not None:
        schools = [s for s in schools if s.status is status]
    return SchoolsPublic(data=schools, count=len(schools))


@router.get("/{school_id}", response_model=SchoolPublic)
def get_school(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    school_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")],
) -> SchoolPublic:
    view = topology.get_school(session, school_id=school_id, scope=user.scope)
    if view is None:
        raise not_found(request, user=user, now=now, what=f"school {school_id!r}")
    return to_public(view, now=now, offline_after_s=settings.offline_after_s)
