"""The central hub's city-wide views, read from what regional hubs forwarded; every query is
filtered by the caller's scope inside the database (``scope=None``: unscoped, the console's)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campus_protocol import Severity
from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import District, School
from cloud_hub.federation.models import (
    AlertTransition,
    DistrictReport,
    KpiSnapshotRow,
    RegionalHub,
    SchoolHealth,
)
from cloud_hub.kpis.compute import KpiReport, KpiValue, Level
from cloud_hub.kpis.definitions import Kpi

#: alert states that are over (issue 8's lifecycle: resolved; the older one: cleared)
ENDED_STATES = frozenset({"resolved", "cleared", "closed"})
_RATES = {
    Kpi.CAMPUS_IOT_COVERAGE,
    Kpi.SMART_LIGHTING_COVERAGE,
    Kpi.RECORDING_CLASSROOM_COVERAGE,
    Kpi.LIGHTING_COMPLIANCE,
}


@dataclass(frozen=True)
class DistrictReporting:
    district_id: str
    name: str
    city_id: str
    regional_hub_id: str
    regional_hub_online: bool | None
    first_reported_at: datetime
    last_reported_at: datetime
    schools: int
    by_status: dict[str, int]


def districts(session: Session, *, scope: Scope | None) -> list[DistrictReporting]:
    """Which districts report, through which regional hub, since when and how recently."""
    query = (
        select(DistrictReport, District.name, RegionalHub.online)
        .outerjoin(District, District.id == DistrictReport.district_id)
        .outerjoin(RegionalHub, RegionalHub.id == DistrictReport.regional_hub_id)
        .order_by(DistrictReport.district_id)
    )
    if scope is not None:
        query = query.where(scope.districts(DistrictReport.district_id))
    statuses = Counter(session.execute(select(SchoolHealth.district_id, SchoolHealth.status)))
    found = []
    for report, name, online in session.execute(query):
        by_status = {
            status: n
            for (district, status), n in statuses.items()
            if district == report.district_id
        }
        found.append(
            DistrictReporting(
                district_id=report.district_id,
                name=name or "",
                city_id=report.city_id,
                regional_hub_id=report.regional_hub_id,
                regional_hub_online=online,
                first_reported_at=report.first_reported_at,
                last_reported_at=report.last_reported_at,
                schools=sum(by_status.values()),
                by_status=dict(sorted(by_status.items())),
            )
        )
    return found


@dataclass(frozen=True)
class SchoolReported:
    health: SchoolHealth
    name: str
    district_name: str
    city_id: str
    regional_hub_online: bool | None  # the reporting regional hub's retained state


def schools(
    session: Session,
    *,
    scope: Scope | None,
    status: str | None = None,
    district_id: str | None = None,
) -> list[SchoolReported]:
    """Every school as its regional hub last reported it, optionally of one status or district."""
    query = (
        select(SchoolHealth, School.name, District.name, District.city_id, RegionalHub.online)
        .outerjoin(School, School.id == SchoolHealth.school_id)
        .outerjoin(District, District.id == SchoolHealth.district_id)
        .outerjoin(RegionalHub, RegionalHub.id == SchoolHealth.regional_hub_id)
        .order_by(SchoolHealth.district_id, SchoolHealth.school_id)
    )
    if scope is not None:
        query = query.where(scope.schools(SchoolHealth.school_id))
    if status is not None:
        query = query.where(SchoolHealth.status == status)
    if district_id is not None:
        query = query.where(SchoolHealth.district_id == district_id)
    return [
        SchoolReported(health, name or "", district or "", city or "", online)
        for health, name, district, city, online in session.execute(query)
    ]


def regional_hubs(
    session: Session,
    *,
    scope: Scope | None,
    school_id: str | None = None,
    district_id: str | None = None,
    alert_id: int | None = None,
) -> list[str]:
    """The regional hubs that report a school (``school_id``), an alert of that id, a district,
    or else any district in scope: the ones to ask for what only a regional hub keeps."""
    if alert_id is not None:
        query = select(AlertTransition.regional_hub_id).where(AlertTransition.alert_id == alert_id)
        if scope is not None:
            query = query.where(scope.schools(AlertTransition.school_id))
    elif school_id is not None:
        query = select(SchoolHealth.regional_hub_id).where(SchoolHealth.school_id == school_id)
        if scope is not None:
            query = query.where(scope.schools(SchoolHealth.school_id))
    else:
        query = select(DistrictReport.regional_hub_id)
        if district_id is not None:
            query = query.where(DistrictReport.district_id == district_id)
        if scope is not None:
            query = query.where(scope.districts(DistrictReport.district_id))
    return sorted(set(session.scalars(query)))


@dataclass(frozen=True)
class AlertReported:
    """An alert of a regional hub: its newest transition (its state now) and when it opened."""

    newest: AlertTransition
    opened_at: datetime

    @property
    def over(self) -> bool:
        return self.newest.state in ENDED_STATES


def alerts(
    session: Session,
    *,
    scope: Scope | None,
    district_id: str | None = None,
    school_id: str | None = None,
    open_only: bool = False,
) -> list[AlertReported]:
    """Every alert the regional hubs reported (in scope, of one district or school; ``open_only``:
    those not over), as its newest transition says, in the order they opened. The database picks
    each alert's newest transition: one row per alert, however many transitions it had."""
    alert = (AlertTransition.regional_hub_id, AlertTransition.alert_id)
    ranked = select(
        AlertTransition.id,
        func.row_number()
        .over(partition_by=alert, order_by=(AlertTransition.at.desc(), AlertTransition.id.desc()))
        .label("rank"),
        func.min(AlertTransition.at).over(partition_by=alert).label("opened_at"),
    )
    if scope is not None:
        ranked = ranked.where(scope.schools(AlertTransition.school_id))
    if district_id is not None:
        ranked = ranked.where(AlertTransition.district_id == district_id)
    if school_id is not None:
        ranked = ranked.where(AlertTransition.school_id == school_id)
    newest = ranked.subquery()
    query = (
        select(AlertTransition, newest.c.opened_at)
        .join(newest, newest.c.id == AlertTransition.id)
        .where(newest.c.rank == 1)
        .order_by(newest.c.opened_at, *alert)
    )
    if open_only:
        query = query.where(AlertTransition.state.not_in(ENDED_STATES))
    return [AlertReported(change, opened_at) for change, opened_at in session.execute(query)]


@dataclass
class AlertLevels:
    """Alerts not yet over, by level (I is the highest), per district and in all."""

    total: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in Severity})
    by_district: dict[str, dict[str, int]] = field(default_factory=dict)


def alerts_by_level(session: Session, *, scope: Scope | None) -> AlertLevels:
    """Count every alert whose newest transition is not an end state, by severity."""
    levels = AlertLevels()
    for alert in alerts(session, scope=scope, open_only=True):
        change = alert.newest
        levels.total[change.severity] = levels.total.get(change.severity, 0) + 1
        district = levels.by_district.setdefault(
            change.district_id or "", {s.value: 0 for s in Severity}
        )
        district[change.severity] = district.get(change.severity, 0) + 1
    return levels


def city_kpis(
    session: Session, *, level: Level, id: str, scope: Scope | None, now: datetime
) -> KpiReport | None:
    """The KPIs of a city or district from each district's newest snapshot, summed as numerators
    over denominators; None when no district of it (in scope) has reported KPIs."""
    newest = (
        select(KpiSnapshotRow.district_id, func.max(KpiSnapshotRow.at).label("at"))
        .group_by(KpiSnapshotRow.district_id)
        .subquery()
    )
    query = select(KpiSnapshotRow).join(
        newest,
        (newest.c.district_id == KpiSnapshotRow.district_id) & (newest.c.at == KpiSnapshotRow.at),
    )
    if level is Level.CITY:
        query = query.where(KpiSnapshotRow.city_id == id)
    elif level is Level.DISTRICT:
        query = query.where(KpiSnapshotRow.district_id == id)
    else:
        return None  # regional hubs forward district KPIs; a school's are at its regional hub
    if scope is not None:
        query = query.where(scope.districts(KpiSnapshotRow.district_id))
    rows = list(session.scalars(query))
    if not rows:
        return None
    sums: dict[Kpi, list[float]] = {}
    schools: dict[str, int] = {}
    for row in rows:
        if row.kpi not in Kpi.__members__.values():
            continue  # a KPI this central hub does not know yet (a newer regional hub)
        pair = sums.setdefault(Kpi(row.kpi), [0.0, 0.0])
        pair[0] += row.numerator
        pair[1] += row.denominator
        schools[row.district_id] = row.schools
    values = [KpiValue(kpi, _value(kpi, *sums[kpi]), *sums[kpi]) for kpi in Kpi if kpi in sums]
    at = min(row.at for row in rows)  # the oldest snapshot in the sum
    return KpiReport(level=level, id=id, at=at, schools=sum(schools.values()), values=values)


def _value(kpi: Kpi, numerator: float, denominator: float) -> float | None:
    """A KPI's value from its summed parts, as ``kpis.compute`` defines each."""
    if kpi in _RATES:
        return 100.0 * numerator / denominator if denominator else None
    if kpi is Kpi.RECORDING_USAGE:
        return numerator  # hours of every recording room together
    return numerator / denominator if denominator else None  # energy per metered school
