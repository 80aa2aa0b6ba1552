"""GET /api/v1/schools and /api/v1/schools/{school_id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request

from cloud_hub.alerts.lifecycle import ACTIVE_STATES
from cloud_hub.api import reported
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, SettingsDep, not_found
from cloud_hub.api.hub_state import HearingDep, ProfilesDep
from cloud_hub.api.routes.alerts import to_public as alert_public
from cloud_hub.api.routes.devices import to_public as device_public
from cloud_hub.api.schemas import (
    DeviceCounts,
    DistrictRef,
    GatewayRef,
    IdQuery,
    ReportedSchoolsPublic,
    RoomDetail,
    SchoolDetail,
    SchoolPublic,
    SchoolsPublic,
)
from cloud_hub.db import alerts, series, telemetry, topology
from cloud_hub.federation import city
from cloud_hub.status import (
    ALWAYS_HEARD,
    GatewayStatus,
    Hearing,
    SchoolStatus,
    device_status,
    gateway_status,
    summarize_school,
)

router = APIRouter(prefix="/api/v1/schools", tags=["schools"])


def to_public(
    view: topology.SchoolTopology,
    *,
    now: datetime,
    offline_after_s: float,
    hearing: Hearing = ALWAYS_HEARD,
) -> SchoolPublic:
    summary = summarize_school(
        gateways=view.gateways,
        devices=view.devices,
        now=now,
        offline_after_s=offline_after_s,
        hearing=hearing,
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


@router.get("", response_model=SchoolsPublic | ReportedSchoolsPublic)
def list_schools(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    hearing: HearingDep,
    district_id: IdQuery = None,
    status: SchoolStatus | None = None,
) -> SchoolsPublic | ReportedSchoolsPublic:
    """Schools with their gateway, device counts and online | degraded | offline status; at a
    central hub, as their regional hubs last reported them (``reported_by``)."""
    if reported.is_central(settings):
        return reported.schools(session, scope=user.scope, district_id=district_id, status=status)
    views = topology.list_schools(session, scope=user.scope, district_id=district_id)
    schools = [
        to_public(v, now=now, offline_after_s=settings.offline_after_s, hearing=hearing)
        for v in views
    ]
    if status is not None:
        schools = [s for s in schools if s.status is status]
    return SchoolsPublic(data=schools, count=len(schools))


@router.get("/{school_id}", response_model=SchoolDetail)
def get_school(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    hearing: HearingDep,
    profiles: ProfilesDep,
    school_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")],
) -> SchoolDetail:
    """The school's summary, rooms with devices and latest values, and active alerts (at a
    central hub: 404 naming the regional hub that keeps them)."""
    if reported.is_central(settings):
        hubs = city.regional_hubs(session, scope=user.scope, school_id=school_id)
        if not hubs:
            raise not_found(request, user=user, now=now, what=f"school {school_id!r}")
        what = f"school {school_id!r} (its rooms, devices and alerts)"
        raise reported.not_at_this_tier(request, user=user, now=now, what=what, hubs=hubs)
    view = topology.get_school(session, school_id=school_id, scope=user.scope)
    if view is None:
        raise not_found(request, user=user, now=now, what=f"school {school_id!r}")
    summary = to_public(view, now=now, offline_after_s=settings.offline_after_s, hearing=hearing)
    live = {
        g.id: gateway_status(g, now=now, offline_after_s=settings.offline_after_s, hearing=hearing)
        is GatewayStatus.ONLINE
        for g in view.gateways
    }
    values = telemetry.latest_values(session, device_ids=(d.id for d in view.devices))
    shares = series.completeness(session, device_ids=[d.id for d in view.devices], now=now)
    rooms: dict[int | None, RoomDetail] = {}
    for device in view.devices:
        room = device.room
        detail = rooms.get(device.room_id)
        if detail is None:
            detail = RoomDetail(
                id=room.key if room else "",
                name=room.name if room else "",
                type=room.type if room else "",
                gateway_id=device.gateway_id,
                devices=[],
            )
            rooms[device.room_id] = detail
        status = device_status(device, gateway_online=live.get(device.gateway_id, False))
        detail.devices.append(
            device_public(
                device,
                values.get(device.id, []),
                status=status,
                profiles=profiles,
                completeness=shares.get(device.id),
            )
        )
    where = alerts.AlertFilter(states=ACTIVE_STATES, school_id=school_id)
    active, _ = alerts.list_alerts(session, scope=user.scope, where=where, limit=500)
    return SchoolDetail(
        **summary.model_dump(),
        rooms=sorted(rooms.values(), key=lambda r: (r.gateway_id, r.id)),
        active_alerts=[alert_public(a) for a in active],
    )
