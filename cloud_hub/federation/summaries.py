"""What a regional hub forwards, built from its own database (read-only, no I/O beyond it):
per-school rollups, the fleet's health, the districts' KPIs and alert transitions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from campus_protocol import (
    AlertChange,
    DistrictKpis,
    FleetHealth,
    KpiFigure,
    PointRollup,
    RollupPeriod,
    SchoolHealthSummary,
    SchoolRollup,
    SchoolStatusCode,
    Severity,
    SiteIdentity,
)
from cloud_hub.db import topology
from cloud_hub.db.models import (
    Alert,
    Device,
    District,
    Gateway,
    School,
    TelemetryWindow,
)
from cloud_hub.db.models import (
    AlertChange as AlertChangeRow,
)
from cloud_hub.kpis.compute import LessonTimes, Level, compute_kpis
from cloud_hub.status import GatewayStatus, gateway_status, summarize_school
from device_profiles.schema import Profile


def period_start(at: datetime, period: RollupPeriod) -> datetime:
    """The start of the period ``at`` falls in (periods are aligned to the UTC clock)."""
    seconds = int(at.timestamp()) // period.seconds * period.seconds
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class _PointSums:
    windows: int = 0
    count: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    weighted: float = 0.0
    unit: str = ""

    def add(self, count: int, low: float, high: float, mean: float, unit: str) -> None:
        self.windows += 1
        self.count += count
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.weighted += mean * count
        self.unit = self.unit or unit

    def rollup(self) -> PointRollup:
        mean = min(max(self.weighted / self.count, self.low), self.high)  # rounding stays inside
        return PointRollup(
            windows=self.windows,
            count=self.count,
            min=self.low,
            max=self.high,
            mean=mean,
            unit=self.unit,
        )


@dataclass
class _SchoolPeriod:
    district_id: str
    devices: set[int] = field(default_factory=set)
    points: dict[str, _PointSums] = field(default_factory=lambda: defaultdict(_PointSums))


def school_rollups(
    session: Session, *, period: RollupPeriod, since: datetime, until: datetime
) -> list[SchoolRollup]:
    """Every school's rollup of every ``period`` starting in ``[since, until)`` that holds a
    window, from the telemetry windows starting in it (windows of devices not yet placed in a
    school are left out until their gateway's first heartbeat places them)."""
    query = (
        select(
            School.id,
            School.district_id,
            TelemetryWindow.device_id,
            TelemetryWindow.window_start,
            TelemetryWindow.point,
            TelemetryWindow.count,
            TelemetryWindow.min,
            TelemetryWindow.max,
            TelemetryWindow.mean,
            TelemetryWindow.unit,
        )
        .join(Device, Device.id == TelemetryWindow.device_id)
        .join(Gateway, Gateway.id == Device.gateway_id)
        .join(School, School.id == Gateway.school_id)
        .where(TelemetryWindow.window_start >= since, TelemetryWindow.window_start < until)
    )
    found: dict[tuple[str, datetime], _SchoolPeriod] = {}
    for school, district, device, start, point, count, low, high, mean, unit in session.execute(
        query
    ):
        key = (school, period_start(start, period))
        bucket = found.setdefault(key, _SchoolPeriod(district))
        bucket.devices.add(device)
        bucket.points[point].add(count, low, high, mean, unit)
    return [
        SchoolRollup(
            school_id=school,
            district_id=bucket.district_id,
            period=period,
            period_start=start,
            devices=len(bucket.devices),
            points={name: sums.rollup() for name, sums in sorted(bucket.points.items())},
        )
        for (school, start), bucket in sorted(found.items())
    ]


def fleet_health(session: Session, *, now: datetime, offline_after_s: float) -> FleetHealth:
    """Every school this hub knows, with its status as the hub's own API shows it."""
    schools = []
    for view in topology.list_schools(session):
        summary = summarize_school(
            gateways=view.gateways, devices=view.devices, now=now, offline_after_s=offline_after_s
        )
        online = sum(
            gateway_status(g, now=now, offline_after_s=offline_after_s) is GatewayStatus.ONLINE
            for g in view.gateways
        )
        seen = [g.last_seen_at for g in view.gateways if g.last_seen_at is not None]
        schools.append(
            SchoolHealthSummary(
                site=_site(view.school),
                status=SchoolStatusCode(summary.status.value),
                gateways=len(view.gateways),
                gateways_online=online,
                devices=summary.devices_total,
                devices_online=summary.devices_online,
                last_seen_at=max(seen, default=None),
            )
        )
    return FleetHealth(at=now, schools=schools)


def district_kpis(
    session: Session,
    *,
    now: datetime,
    profiles: Mapping[str, Profile],
    lessons: LessonTimes,
) -> list[DistrictKpis]:
    """The KPIs of every district this hub knows, as numerators over denominators."""
    figures = []
    for district in session.scalars(select(District).order_by(District.id)):
        report = compute_kpis(
            session,
            level=Level.DISTRICT,
            id=district.id,
            scope=None,
            now=now,
            profiles=profiles,
            lessons=lessons,
        )
        if report is None:
            continue  # a district without schools
        figures.append(
            DistrictKpis(
                district_id=district.id,
                city_id=district.city_id,
                schools=report.schools,
                figures=[
                    KpiFigure(
                        kpi=value.kpi.value,
                        value=value.value,
                        numerator=value.numerator,
                        denominator=value.denominator,
                    )
                    for value in report.values
                ],
            )
        )
    return figures


def alert_changes(session: Session, *, after_id: int, limit: int) -> tuple[list[AlertChange], int]:
    """The alert transitions among the ``limit`` changes recorded after the one numbered
    ``after_id``, oldest first, with the number of the last change read (``after_id`` when there
    are none). A repeated raise of an open alert is a change but not a transition: left out."""
    rows = session.execute(
        select(AlertChangeRow, Alert, School.district_id)
        .join(Alert, Alert.id == AlertChangeRow.alert_id)
        .outerjoin(School, School.id == Alert.school_id)
        .where(AlertChangeRow.id > after_id)
        .order_by(AlertChangeRow.id)
        .limit(limit)
    ).all()
    changes = [
        AlertChange(
            alert_id=alert.id,
            school_id=alert.school_id,
            district_id=district_id,
            device=alert.device or alert.gateway_id,  # a gateway's own alert: the gateway
            rule=alert.rule,
            severity=Severity(alert.severity),
            state=change.to_state,
            at=change.at if change.at.tzinfo else change.at.replace(tzinfo=UTC),
            message=alert.message[:200],
        )
        for change, alert, district_id in rows
        if change.from_state != change.to_state
    ]
    return changes, rows[-1][0].id if rows else after_id


def _site(school: School) -> SiteIdentity:
    district = school.district
    return SiteIdentity(
        city_id=district.city_id,
        city_name=district.city_name,
        district_id=district.id,
        district_name=district.name,
        school_id=school.id,
        school_name=school.name,
    )


ROLLUP_PERIODS = (RollupPeriod.FIVE_MINUTES, RollupPeriod.HOUR)
