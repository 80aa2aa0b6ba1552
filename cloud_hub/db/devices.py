"""Rooms and devices: registration from heartbeats and telemetry, and the device listing."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, Update, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from campus_protocol.messages import DeviceHealth, DeviceStatus
from cloud_hub.auth.scope import Scope
from cloud_hub.db import feed
from cloud_hub.db.base import UtcDateTime, insert_missing, positional_sql, stored_datetime
from cloud_hub.db.models import Approval, Device, Gateway, Room


def ensure_room(session: Session, *, gateway_id: str, key: str, name: str = "") -> Room:
    """The room ``key`` of ``gateway_id``, created when new and renamed when ``name`` is given."""
    query = select(Room).where(Room.gateway_id == gateway_id, Room.key == key)
    room = session.scalar(query)
    if room is None:
        insert_missing(session, Room, gateway_id=gateway_id, key=key, name=name)
        room = session.scalars(query).one()
    elif name:
        room.name = name
    return room


def device_id(session: Session, *, gateway_id: str, key: str) -> int | None:
    """The id of device ``key`` of ``gateway_id``, without loading the row."""
    query = select(Device.id).where(Device.gateway_id == gateway_id, Device.key == key)
    return session.scalar(query)


def advance_seen(session: Session, *, newest: Mapping[int, datetime]) -> None:
    """Move each device's ``last_seen_at`` and ``last_ok_at`` forward to the end of its newest
    stored window (never back: a replayed older window leaves them alone); one executemany."""
    if not newest:
        return
    dialect = session.get_bind().dialect
    if dialect.name not in _ADVANCE_SEEN:
        _ADVANCE_SEEN[dialect.name] = positional_sql(_advance_seen(), dialect)
    sql, names = _ADVANCE_SEEN[dialect.name]
    stored = stored_datetime(dialect)
    params = [{"device": device, "end": stored(end)} for device, end in newest.items()]
    session.connection().exec_driver_sql(sql, [tuple(p[name] for name in names) for p in params])


_ADVANCE_SEEN: dict[str, tuple[str, tuple[str, ...]]] = {}  # by dialect: SQL, parameter names


def _advance_seen() -> Update:
    table = cast(Table, Device.__table__)
    end = bindparam("end", type_=UtcDateTime())
    later = {
        column.key: case((or_(column.is_(None), column < end), end), else_=column)
        for column in (table.c.last_seen_at, table.c.last_ok_at)
    }
    return update(table).where(table.c.id == bindparam("device")).values(later)


def find_device(session: Session, *, gateway_id: str, key: str) -> Device | None:
    return session.scalar(select(Device).where(Device.gateway_id == gateway_id, Device.key == key))


def apply_device_health(
    session: Session, *, gateway_id: str, health: DeviceHealth, at: datetime
) -> Device:
    """Register or update a device from the agent's heartbeat (the authority on its status);
    a change of status is recorded at ``at`` (when the hub received the heartbeat)."""
    room = ensure_room(session, gateway_id=gateway_id, key=health.room, name=health.room_name)
    device = find_device(session, gateway_id=gateway_id, key=health.device)
    if device is None:
        insert_missing(
            session,
            Device,
            gateway_id=gateway_id,
            key=health.device,
            profile=health.profile,
            approval=new_device_approval(session, gateway_id=gateway_id).value,
        )
        device = find_device(session, gateway_id=gateway_id, key=health.device)
        assert device is not None
    if device.status != health.status.value:
        offline = health.status is DeviceStatus.OFFLINE
        device.offline_since = at if offline else None
        feed.record_status(
            session,
            gateway_id=gateway_id,
            device=health.device,
            status=health.status.value,
            at=at,
            reason=health.last_error,
        )
    device.room_id = room.id
    device.profile = health.profile
    device.protocol = health.protocol
    device.status = health.status.value
    device.last_ok_at = health.last_ok_at or device.last_ok_at
    device.last_error = health.last_error
    session.flush()
    return device


def device_keys(session: Session, *, gateway_id: str) -> set[str]:
    """The keys of every device registered under ``gateway_id``."""
    return set(session.scalars(select(Device.key).where(Device.gateway_id == gateway_id)))


def ensure_device(
    session: Session, *, gateway_id: str, key: str, room: str, profile: str, protocol: str
) -> Device:
    """The device a telemetry message names, registered from the message when not yet known."""
    device = find_device(session, gateway_id=gateway_id, key=key)
    if device is None:
        room_row = ensure_room(session, gateway_id=gateway_id, key=room)
        insert_missing(
            session,
            Device,
            gateway_id=gateway_id,
            key=key,
            room_id=room_row.id,
            profile=profile,
            protocol=protocol,
            status=DeviceStatus.UNKNOWN.value,
            approval=new_device_approval(session, gateway_id=gateway_id).value,
        )
        device = find_device(session, gateway_id=gateway_id, key=key)
        assert device is not None
    return device


def list_devices(
    session: Session,
    *,
    scope: Scope | None = None,
    school_id: str | None = None,
    profile: str | None = None,
) -> list[Device]:
    """Devices in ``scope`` ordered by gateway and id, optionally of one school or one profile."""
    query = select(Device).join(Gateway).order_by(Device.gateway_id, Device.key)
    if scope is not None:
        query = query.where(scope.schools(Gateway.school_id))
    if school_id is not None:
        query = query.where(Gateway.school_id == school_id)
    if profile is not None:
        query = query.where(Device.profile == profile)
    return list(session.scalars(query))


def find_in_scope(
    session: Session, *, key: str, gateway_id: str | None, scope: Scope
) -> list[Device]:
    """Devices named ``key`` (on ``gateway_id`` when given) whose school is in ``scope``."""
    query = select(Device).where(Device.key == key, scope.gateways(Device.gateway_id))
    if gateway_id is not None:
        query = query.where(Device.gateway_id == gateway_id)
    return list(session.scalars(query.limit(20)))


def new_device_approval(session: Session, *, gateway_id: str) -> Approval:
    """A device first heard of waits for approval when its gateway's devices were imported into
    the registry (``campus hub import``); a gateway with no registry registers what it reports."""
    registered = session.scalar(select(Gateway.registered_at).where(Gateway.id == gateway_id))
    return Approval.PENDING if registered is not None else Approval.APPROVED


def unapproved_keys(session: Session, *, gateway_ids: Collection[str]) -> set[tuple[str, str]]:
    """(gateway, device) keys of the devices on ``gateway_ids`` that are not approved."""
    if not gateway_ids:
        return set()
    rows = session.connection().execute(_UNAPPROVED, {"gateways": list(gateway_ids)})
    return {(gateway, key) for gateway, key in rows}


# built once (read by every ingest batch); run on the connection, past the ORM's per-query work
_UNAPPROVED = select(Device.gateway_id, Device.key).where(
    Device.gateway_id.in_(bindparam("gateways", expanding=True)),
    Device.approval != Approval.APPROVED.value,
)
