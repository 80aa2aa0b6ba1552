"""GET /api/v1/districts: each district's schools by status and its active alerts by level."""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter

from campus_protocol.messages import Severity
from cloud_hub.api import reported
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, SettingsDep
from cloud_hub.api.hub_state import HearingDep
from cloud_hub.api.schemas import (
    DistrictPublic,
    DistrictsPublic,
    ReportedDistrictsPublic,
    SchoolCounts,
)
from cloud_hub.db import topology
from cloud_hub.db.alerts import active_by_district_and_level
from cloud_hub.status import SchoolStatus, summarize_school

router = APIRouter(prefix="/api/v1/districts", tags=["districts"])


@router.get("", response_model=DistrictsPublic | ReportedDistrictsPublic)
def list_districts(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    hearing: HearingDep,
) -> DistrictsPublic | ReportedDistrictsPublic:
    """Districts in your scope, each with how many of its schools are online, degraded or offline
    and how many alerts are active (open or acknowledged) at each level; at a central hub, as
    their regional hubs reported them, with which hub and when."""
    if reported.is_central(settings):
        return reported.districts(session, scope=user.scope)
    statuses: dict[str, Counter[SchoolStatus]] = {}
    names: dict[str, tuple[str, str]] = {}
    for view in topology.list_schools(session, scope=user.scope):
        district = view.school.district
        names[district.id] = (district.name, district.city_id)
        summary = summarize_school(
            gateways=view.gateways,
            devices=view.devices,
            now=now,
            offline_after_s=settings.offline_after_s,
            hearing=hearing,
        )
        statuses.setdefault(district.id, Counter())[summary.status] += 1
    for district in topology.list_districts(session, scope=user.scope):
        names.setdefault(district.id, (district.name, district.city_id))
    alerts = active_by_district_and_level(session, scope=user.scope)
    data = []
    for district_id, (name, city_id) in sorted(names.items()):
        counts = statuses.get(district_id, Counter())
        data.append(
            DistrictPublic(
                id=district_id,
                name=name,
                city_id=city_id,
                schools=SchoolCounts(
                    total=sum(counts.values()),
                    online=counts[SchoolStatus.ONLINE],
                    degraded=counts[SchoolStatus.DEGRADED],
                    offline=counts[SchoolStatus.OFFLINE],
                ),
                active_alerts=alerts.get(district_id, dict.fromkeys(Severity, 0)),
            )
        )
    return DistrictsPublic(data=data, count=len(data))
