"""What the ordinary read routes answer at a central hub: the regional hubs' reports
(``cloud_hub.federation.city``), in the shapes a regional hub answers with plus who reported
them; and the 404 for what only a regional hub keeps, naming the regional hubs to ask."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from fastapi import HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campus_protocol.messages import Severity
from cloud_hub.alerts.levels import LEVELS
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, SettingsDep, not_found
from cloud_hub.api.schemas import (
    DeviceCounts,
    DistrictRef,
    LevelPublic,
    ReportedAlertPublic,
    ReportedAlertsPublic,
    ReportedBy,
    ReportedDistrictPublic,
    ReportedDistrictsPublic,
    ReportedSchoolPublic,
    ReportedSchoolsPublic,
    SchoolCounts,
    TierPublic,
)
from cloud_hub.auth.principal import Principal
from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import School
from cloud_hub.federation import city
from cloud_hub.settings import HubSettings
from cloud_hub.status import SchoolStatus


def is_central(settings: HubSettings) -> bool:
    return settings.role == "central"


def level_public(severity: Severity) -> LevelPublic:
    level = LEVELS[severity]
    return LevelPublic(code=level.code, name=level.name, colour=level.colour)


def schools(
    session: Session,
    *,
    scope: Scope,
    district_id: str | None = None,
    status: SchoolStatus | None = None,
) -> ReportedSchoolsPublic:
    """Every school in scope as its regional hub last reported it."""
    chosen = city.schools(
        session, scope=scope, district_id=district_id, status=status.value if status else None
    )
    data = [_school(s) for s in chosen]
    return ReportedSchoolsPublic(data=data, count=len(data))


def _school(reported: city.SchoolReported) -> ReportedSchoolPublic:
    health = reported.health
    return ReportedSchoolPublic(
        id=health.school_id,
        name=reported.name,
        district=DistrictRef(id=health.district_id, name=reported.district_name),
        city_id=reported.city_id,
        gateway=None,  # gateways are known by id only at their regional hub
        status=SchoolStatus(health.status),
        devices=DeviceCounts(
            total=health.devices,
            online=health.devices_online,
            offline=health.devices - health.devices_online,
        ),
        reported_by=ReportedBy(
            regional_hub=health.regional_hub_id,
            regional_hub_online=reported.regional_hub_online,
            reported_at=health.reported_at,
            last_seen_at=health.last_seen_at,
            gateways=health.gateways,
            gateways_online=health.gateways_online,
        ),
    )


def districts(session: Session, *, scope: Scope) -> ReportedDistrictsPublic:
    """Every reporting district in scope: its schools by status and its alerts not yet over."""
    levels = city.alerts_by_level(session, scope=scope)
    data = []
    for d in city.districts(session, scope=scope):
        counts = Counter(d.by_status)
        data.append(
            ReportedDistrictPublic(
                id=d.district_id,
                name=d.name,
                city_id=d.city_id,
                schools=SchoolCounts(
                    total=d.schools,
                    online=counts[SchoolStatus.ONLINE.value],
                    degraded=counts[SchoolStatus.DEGRADED.value],
                    offline=counts[SchoolStatus.OFFLINE.value],
                ),
                active_alerts=levels.by_district.get(d.district_id, {s.value: 0 for s in Severity}),
                regional_hub=d.regional_hub_id,
                regional_hub_online=d.regional_hub_online,
                last_report_at=d.last_reported_at,
            )
        )
    return ReportedDistrictsPublic(data=data, count=len(data))


def alerts(
    session: Session,
    *,
    scope: Scope,
    state: str | None = None,
    district_id: str | None = None,
    school_id: str | None = None,
    level: Severity | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> ReportedAlertsPublic:
    """The regional hubs' alerts newest first, of one ``state`` (``active``: not yet over) or
    any; ``count`` is how many match, ``data`` the page from ``offset``."""
    found = [
        a
        for a in city.alerts(session, scope=scope, district_id=district_id, school_id=school_id)
        if (state is None or (not a.over if state == "active" else a.newest.state == state))
        and (level is None or a.newest.severity == level.value)
        and (since is None or a.opened_at >= since)
        and (until is None or a.opened_at < until)
    ]
    found.sort(key=lambda a: (a.opened_at, a.newest.regional_hub_id, a.newest.alert_id))
    page = list(reversed(found))[offset : offset + limit]
    return ReportedAlertsPublic(data=[_alert(a) for a in page], count=len(found))


def _alert(alert: city.AlertReported) -> ReportedAlertPublic:
    change = alert.newest
    severity = Severity(change.severity)
    return ReportedAlertPublic(
        id=f"{change.regional_hub_id}:{change.alert_id}",
        regional_hub=change.regional_hub_id,
        alert_id=change.alert_id,
        school_id=change.school_id,
        district_id=change.district_id,
        device=change.device,
        rule=change.rule,
        severity=severity,
        level=level_public(severity),
        state=change.state,
        opened_at=alert.opened_at,
        changed_at=change.at,
        message=change.message,
    )


def tier(session: Session, *, settings: HubSettings, scope: Scope) -> TierPublic:
    """This hub's tier; at a central hub, the schools in scope and the regional hubs reporting
    them (offline: their retained state says so; never published counts as not offline)."""
    if not is_central(settings):
        count = session.scalar(select(func.count()).where(scope.schools(School.id)))
        return TierPublic(role=settings.role, schools=count or 0, regional_hubs=[],
                          regional_hubs_offline=0)  # fmt: skip
    reported = city.schools(session, scope=scope)
    online = {s.health.regional_hub_id: s.regional_hub_online for s in reported}
    return TierPublic(
        role=settings.role,
        schools=len(reported),
        regional_hubs=sorted(online),
        regional_hubs_offline=sum(1 for up in online.values() if up is False),
    )


def not_at_this_tier(
    request: Request, *, user: Principal, now: datetime, what: str, hubs: Sequence[str]
) -> HTTPException:
    """The 404 for what a central hub does not keep (readings, devices, gateways, commands, an
    alert's own record): it names the regional hubs in the caller's scope to ask instead."""
    ask = ", ".join(hubs) if hubs else "the regional hub of its district"
    return not_found(
        request,
        user=user,
        now=now,
        what=what,
        detail=f"not at this tier: {what} is kept at the regional hub, not at this central "
        f"hub; ask {ask}",
    )


def regional_only(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
) -> None:
    """A dependency for routes that only a regional hub serves (devices, series, gateways,
    commands): at a central hub they answer ``not_at_this_tier``."""
    if not is_central(settings):
        return
    params = request.query_params
    hubs = city.regional_hubs(
        session,
        scope=user.scope,
        school_id=params.get("school_id"),
        district_id=params.get("district_id"),
    )
    raise not_at_this_tier(request, user=user, now=now, what=request.url.path, hubs=hubs)
