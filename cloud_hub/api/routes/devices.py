"""GET /api/v1/devices; POST /api/v1/gateways/{gateway}/devices/{device}/approve and /reject."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from fastapi import APIRouter, HTTPException
from sqlalchemy.orm import Session

from campus_protocol.messages import DeviceStatus
from cloud_hub.api.deps import CurrentUser, NowDep, Operator, SessionDep, SettingsDep
from cloud_hub.api.hub_state import HearingDep, ProfilesDep
from cloud_hub.api.schemas import (
    DeviceKeyPath,
    DevicePublic,
    DevicesPublic,
    GatewayKeyPath,
    IdQuery,
    RoomRef,
    ValuePublic,
)
from cloud_hub.auth import audit
from cloud_hub.auth.principal import Principal
from cloud_hub.db import devices, series, telemetry
from cloud_hub.db.base import begin_write
from cloud_hub.db.models import Approval, Device, LatestValue
from cloud_hub.status import GatewayStatus, device_status, gateway_status
from device_profiles.schema import Profile

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


def to_public(
    device: Device,
    values: list[LatestValue],
    *,
    status: DeviceStatus,
    profiles: Mapping[str, Profile],
    completeness: float | None = None,
) -> DevicePublic:
    room = device.room
    return DevicePublic(
        id=device.key,
        gateway_id=device.gateway_id,
        school_id=device.gateway.school_id,
        room=RoomRef(id=room.key, name=room.name) if room is not None else None,
        profile=device.profile,
        profile_known=device.profile in profiles,
        protocol=device.protocol,
        status=status,
        approval=Approval(device.approval),
        completeness_24h=None if completeness is None else round(completeness, 4),
        last_ok_at=device.last_ok_at,
        last_error=device.last_error,
        values={v.point: ValuePublic(value=v.value, unit=v.unit, at=v.at) for v in values},
    )


@router.get("", response_model=DevicesPublic)
def list_devices(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    now: NowDep,
    hearing: HearingDep,
    profiles: ProfilesDep,
    school_id: IdQuery = None,
    status: DeviceStatus | None = None,
    profile: IdQuery = None,
) -> DevicesPublic:
    """Devices with their status (``unknown`` while the gateway is offline) and latest values."""
    rows = devices.list_devices(session, scope=user.scope, school_id=school_id, profile=profile)
    values = telemetry.latest_values(session, device_ids=(d.id for d in rows))
    shares = series.completeness(session, device_ids=[d.id for d in rows], now=now)
    data = []
    for device in rows:
        online = gateway_status(
            device.gateway, now=now, offline_after_s=settings.offline_after_s, hearing=hearing
        )
        effective = device_status(device, gateway_online=online is GatewayStatus.ONLINE)
        if status is None or effective is status:
            data.append(
                to_public(
                    device,
                    values.get(device.id, []),
                    status=effective,
                    profiles=profiles,
                    completeness=shares.get(device.id),
                )
            )
    return DevicesPublic(data=data, count=len(data))


#: approval names the device by its gateway: device ids are unique per gateway only
approval_router = APIRouter(prefix="/api/v1/gateways/{gateway_id}/devices", tags=["devices"])


@approval_router.post("/{device_id}/approve", response_model=DevicePublic)
def approve_device(
    session: SessionDep,
    user: Operator,
    now: NowDep,
    profiles: ProfilesDep,
    gateway_id: GatewayKeyPath,
    device_id: DeviceKeyPath,
) -> DevicePublic:
    """Register the device (审核备案): it is counted in status and KPIs and raises alerts."""
    return _decide(session, user, now, profiles, device_id, gateway_id, Approval.APPROVED)


@approval_router.post("/{device_id}/reject", response_model=DevicePublic)
def reject_device(
    session: SessionDep,
    user: Operator,
    now: NowDep,
    profiles: ProfilesDep,
    gateway_id: GatewayKeyPath,
    device_id: DeviceKeyPath,
) -> DevicePublic:
    """Refuse the device: its data is kept, it is never counted and raises no alerts."""
    return _decide(session, user, now, profiles, device_id, gateway_id, Approval.REJECTED)


def _decide(
    session: Session,
    user: Principal,
    now: datetime,
    profiles: Mapping[str, Profile],
    device_id: str,
    gateway_id: str,
    approval: Approval,
) -> DevicePublic:
    action = "device.approve" if approval is Approval.APPROVED else "device.reject"
    target = f"device:{gateway_id}/{device_id}"
    begin_write(session)
    found = devices.find_in_scope(session, key=device_id, gateway_id=gateway_id, scope=user.scope)
    if not found:
        audit.record(
            session, actor=user, action=action, target=target, result=audit.Result.NOT_FOUND, at=now
        )
        session.commit()
        raise HTTPException(404, f"device {device_id!r} of gateway {gateway_id!r} not found")
    device = found[0]
    device.approval, device.approval_by, device.approval_at = approval.value, user.username, now
    audit.record(session, actor=user, action=action, target=target, result=audit.Result.OK, at=now)
    session.commit()
    values = telemetry.latest_values(session, device_ids=[device.id])
    return to_public(
        device, values.get(device.id, []), status=DeviceStatus(device.status), profiles=profiles
    )
