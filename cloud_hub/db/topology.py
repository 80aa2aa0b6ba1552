"""Districts, schools and gateways: upserts from heartbeats and state, and the school listings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from campus_protocol.messages import Health, SiteIdentity
from cloud_hub.auth.scope import Scope
from cloud_hub.db import alerts, feed
from cloud_hub.db.base import insert_missing
from cloud_hub.db.models import Device, District, Gateway, School


def upsert_site(session: Session, *, site: SiteIdentity) -> School:
    """Create or rename the district and school a gateway reports."""
    district = session.get(District, site.district_id)
    if district is None:
        insert_missing(session, District, id=site.district_id, city_id=site.city_id)
        district = session.get_one(District, site.district_id)
    district.city_id = site.city_id
    district.city_name = site.city_name or district.city_name
    district.name = site.district_name or district.name
    school = session.get(School, site.school_id)
    if school is None:
        insert_missing(session, School, id=site.school_id, district_id=site.district_id)
        school = session.get_one(School, site.school_id)
    school.district_id = site.district_id
    school.name = site.school_name or school.name
    session.flush()
    return school


def ensure_gateway(session: Session, *, node: str) -> Gateway:
    """The gateway row for ``node``, created (school unknown) when first heard of."""
    gateway = session.get(Gateway, node)
    if gateway is None:
        insert_missing(session, Gateway, id=node)
        gateway = session.get_one(Gateway, node)
    return gateway


def record_heartbeat(
    session: Session, *, node: str, health: Health, sent_at: datetime, received_at: datetime
) -> tuple[Gateway, bool]:
    """Note that ``node`` is alive; returns the gateway and whether this heartbeat is the newest
    (an older one replayed after an outage must not overwrite newer device states)."""
    school = upsert_site(session, site=health.site)
    gateway = ensure_gateway(session, node=node)
    if gateway.school_id != school.id:
        gateway.school_id = school.id
        alerts.assign_school(session, gateway_id=node, school_id=school.id)
    if gateway.last_seen_at is None or received_at > gateway.last_seen_at:
        gateway.last_seen_at = received_at
    newest = gateway.heartbeat_sent_at is None or sent_at >= gateway.heartbeat_sent_at
    if newest:
        gateway.heartbeat_sent_at = sent_at
        gateway.agent_version = health.agent_version
        gateway.heartbeat_interval_s = health.heartbeat_interval_s
        gateway.outbox_depth = health.outbox_depth
    return gateway, newest


def set_gateway_state(session: Session, *, node: str, online: bool, at: datetime) -> Gateway:
    """Apply a retained state / will message, in arrival order."""
    gateway = ensure_gateway(session, node=node)
    if gateway.online is not online:
        status = "online" if online else "offline"
        feed.record_status(session, gateway_id=node, status=status, at=at, reason="state message")
    gateway.online = online
    gateway.state_changed_at = at
    return gateway


@dataclass
class SchoolTopology:
    """One school with its gateways (most recently seen first) and all their devices."""

    school: School
    gateways: list[Gateway] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)


def list_schools(
    session: Session, *, scope: Scope | None = None, district_id: str | None = None
) -> list[SchoolTopology]:
    """Every school in ``scope`` (optionally of one district) with its gateways and devices, by id.
    ``scope=None`` is unscoped: for the hub's own use, never for a route."""
    query = select(School).order_by(School.id)
    if scope is not None:
        query = query.where(scope.schools(School.id))
    if district_id is not None:
        query = query.where(School.district_id == district_id)
    return _with_gateways(session, list(session.scalars(query)))


def get_school(
    session: Session, *, school_id: str, scope: Scope | None = None
) -> SchoolTopology | None:
    """One school, or None when it does not exist or is out of ``scope``."""
    query = select(School).where(School.id == school_id)
    if scope is not None:
        query = query.where(scope.schools(School.id))
    school = session.scalar(query)
    return None if school is None else _with_gateways(session, [school])[0]


def _with_gateways(session: Session, schools: list[School]) -> list[SchoolTopology]:
    views = {school.id: SchoolTopology(school) for school in schools}
    if not views:
        return []
    gateways = session.scalars(select(Gateway).where(Gateway.school_id.in_(views)))
    by_gateway: dict[str, SchoolTopology] = {}
    for gateway in gateways:
        assert gateway.school_id is not None
        views[gateway.school_id].gateways.append(gateway)
        by_gateway[gateway.id] = views[gateway.school_id]
    devices: dict[str, list[Device]] = defaultdict(list)
    if by_gateway:
        query = select(Device).where(Device.gateway_id.in_(by_gateway)).order_by(Device.key)
        for device in session.scalars(query):
            devices[device.gateway_id].append(device)
    for gateway_id, view in by_gateway.items():
        view.devices.extend(devices[gateway_id])
    for view in views.values():
        view.gateways.sort(key=_recency, reverse=True)
    return list(views.values())


def _recency(gateway: Gateway) -> float:
    return gateway.last_seen_at.timestamp() if gateway.last_seen_at else float("-inf")


def list_districts(session: Session, *, scope: Scope | None = None) -> list[District]:
    """Districts in ``scope`` by id (with or without schools)."""
    query = select(District).order_by(District.id)
    if scope is not None:
        query = query.where(scope.districts(District.id))
    return list(session.scalars(query))
