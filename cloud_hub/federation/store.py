"""Store what regional hubs forward, at the central hub: keyword-only functions on a Session.

Each body is applied as a whole inside the caller's transaction (the central hub's dedupe claim
commits with it). Replacements (rollups, school health) are idempotent: applying one twice
leaves the same rows. History (KPI snapshots, alert transitions) is inserted once per natural
key; an item already stored is counted on its regional hub as a repeat, never stored twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from campus_protocol import AlertChanges, FleetHealth, KpiSnapshot, Rollups, SchoolHealthSummary
from cloud_hub.db import topology
from cloud_hub.db.base import dialect_insert, insert_missing
from cloud_hub.federation.models import (
    AlertTransition,
    DistrictReport,
    KpiSnapshotRow,
    RegionalHub,
    SchoolHealth,
    SchoolRollup,
)


def saw_regional_hub(session: Session, *, node: str, at: datetime, stored: bool) -> RegionalHub:
    """Note a message of ``node`` (``stored``: a new one, not a duplicate or a state)."""
    hub = session.get(RegionalHub, node)
    if hub is None:
        insert_missing(session, RegionalHub, id=node, first_seen_at=at, last_seen_at=at)
        hub = session.get_one(RegionalHub, node)
    hub.last_seen_at = max(hub.last_seen_at, at)
    if stored:
        hub.messages = (hub.messages or 0) + 1
    return hub


def set_regional_state(session: Session, *, node: str, online: bool, at: datetime) -> None:
    """Apply a regional hub's retained state or will."""
    hub = saw_regional_hub(session, node=node, at=at, stored=False)
    hub.online, hub.state_changed_at = online, at


def report_district(
    session: Session, *, node: str, district_id: str, city_id: str, at: datetime
) -> None:
    """``node`` reports ``district_id``: the first report sets since when, every one how recently
    (a district moved to another regional hub follows it)."""
    report = session.get(DistrictReport, district_id)
    if report is None:
        insert_missing(
            session,
            DistrictReport,
            district_id=district_id,
            city_id=city_id,
            regional_hub_id=node,
            first_reported_at=at,
            last_reported_at=at,
        )
        return
    report.regional_hub_id, report.city_id = node, city_id or report.city_id
    report.last_reported_at = max(report.last_reported_at, at)


def apply_fleet(session: Session, *, node: str, fleet: FleetHealth, at: datetime) -> None:
    """Every school of the report, unless a newer report of that school is stored already."""
    for school in fleet.schools:
        topology.upsert_site(session, site=school.site)
        report_district(
            session,
            node=node,
            district_id=school.site.district_id,
            city_id=school.site.city_id,
            at=at,
        )
        _apply_school(session, node=node, school=school, reported_at=fleet.at)


def _apply_school(
    session: Session, *, node: str, school: SchoolHealthSummary, reported_at: datetime
) -> None:
    row = session.get(SchoolHealth, school.site.school_id)
    if row is not None and row.reported_at > reported_at:
        return  # an older report replayed after a newer one
    values = {
        "district_id": school.site.district_id,
        "regional_hub_id": node,
        "status": school.status.value,
        "gateways": school.gateways,
        "gateways_online": school.gateways_online,
        "devices": school.devices,
        "devices_online": school.devices_online,
        "last_seen_at": school.last_seen_at,
        "reported_at": reported_at,
    }
    if row is None:
        session.add(SchoolHealth(school_id=school.site.school_id, **values))
        session.flush()
        return
    for name, value in values.items():
        setattr(row, name, value)


def apply_rollups(session: Session, *, node: str, rollups: Rollups, at: datetime) -> None:
    """Replace each (school, period, start) with the rollup's points."""
    for rollup in rollups.rollups:
        report_district(
            session,
            node=node,
            district_id=rollup.district_id,
            city_id=_city_of(session, rollup.district_id),
            at=at,
        )
        session.execute(
            delete(SchoolRollup).where(
                SchoolRollup.school_id == rollup.school_id,
                SchoolRollup.period == rollup.period.value,
                SchoolRollup.period_start == rollup.period_start,
            )
        )
        session.add_all(
            SchoolRollup(
                school_id=rollup.school_id,
                district_id=rollup.district_id,
                period=rollup.period.value,
                period_start=rollup.period_start,
                point=name,
                devices=rollup.devices,
                windows=point.windows,
                count=point.count,
                min=point.min,
                max=point.max,
                mean=point.mean,
                unit=point.unit,
            )
            for name, point in rollup.points.items()
        )
    session.flush()


def apply_kpis(session: Session, *, node: str, snapshot: KpiSnapshot, at: datetime) -> int:
    """Insert every district's figures at the snapshot time; returns the items already stored."""
    rows = [
        {
            "district_id": district.district_id,
            "at": snapshot.at,
            "kpi": figure.kpi,
            "city_id": district.city_id,
            "regional_hub_id": node,
            "schools": district.schools,
            "value": figure.value,
            "numerator": figure.numerator,
            "denominator": figure.denominator,
        }
        for district in snapshot.districts
        for figure in district.figures
    ]
    for district in snapshot.districts:
        report_district(
            session, node=node, district_id=district.district_id, city_id=district.city_id, at=at
        )
    return _insert_new(session, KpiSnapshotRow, rows, ["district_id", "at", "kpi"])


def apply_alert_changes(session: Session, *, node: str, changes: AlertChanges) -> int:
    """Insert every transition; returns the transitions already stored."""
    rows = [
        {
            "regional_hub_id": node,
            "alert_id": change.alert_id,
            "school_id": change.school_id,
            "district_id": change.district_id,
            "device": change.device,
            "rule": change.rule,
            "severity": change.severity.value,
            "state": change.state,
            "at": change.at,
            "message": change.message,
        }
        for change in changes.changes
    ]
    key = ["regional_hub_id", "alert_id", "state", "at"]
    return _insert_new(session, AlertTransition, rows, key)


def count_repeats(session: Session, *, node: str, repeats: int) -> None:
    if repeats:
        session.execute(
            update(RegionalHub)
            .where(RegionalHub.id == node)
            .values(repeats=RegionalHub.repeats + repeats)
        )


def _insert_new(
    session: Session, model: type, rows: Sequence[Mapping[str, object]], key: list[str]
) -> int:
    """Insert ``rows`` skipping those whose ``key`` exists; returns how many were skipped."""
    if not rows:
        return 0
    stmt = dialect_insert(session, model).on_conflict_do_nothing(index_elements=key)
    inserted = session.execute(stmt.returning(*(getattr(model, k) for k in key)), rows).all()
    return len(rows) - len(inserted)


def _city_of(session: Session, district_id: str) -> str:
    """The city of a district already known (from a health report), else empty for now."""
    city = session.scalar(
        select(DistrictReport.city_id).where(DistrictReport.district_id == district_id)
    )
    return city or ""
