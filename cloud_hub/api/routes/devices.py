"""GET /api/v1/devices."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from campus_protocol.messages import DeviceStatus
from cloud_hub.api.deps import CurrentUser, NowDep, SessionDep, SettingsDep
from cloud_hub.api.schemas import DevicePublic, DevicesPublic, IdQuery, RoomRef, ValuePublic
from cloud_hub.db import devices, telemetry
from cloud_hub.db.models import Device, LatestValue
from cloud_hub.status import GatewayStatus, device_status, gateway_status

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


def to_public(device: Device, values: list[LatestValue], *, status: DeviceStatus) -> DevicePublic:
    room = device.room
    return DevicePublic(
        id=device.key,
        gateway_id=device.gateway_id,
        school_id=device.gateway.school_id,
        room=RoomRef(id=room.key, name=room.name) if room is not None else None,
        profile=device.profile,
        protocol=device.protocol,
        status=status,
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
    school_id: IdQuery = None,
    status: DeviceStatus | None = None,
    profile: IdQuery = None,
) -> DevicesPublic:
    """Devices with their status (``unknown`` while the gateway is offline) and latest values."""
    rows = devices.list_devices(
        session, scope=user.scope, school_id=school_id, profile=profile
    )
    values = telemetry.latest_values(session, device_ids=(d.id for d in rows))
    data = []
    for device in rows:
        online = _gateway_online(device, now=now, offline_after_s=settings.offline_after_s)
        effective = device_status(device, gateway_online=online)
        if status is None or effective is status:
            data.append(to_public(device, values.get(device.id, []), status=effective))
    return DevicesPublic(data=data, count=len(data))


def _gateway_online(device: Device, *, now: datetime, offline_after_s: float) -> bool:
    status = gateway_status(device.gateway, now=now, offline_after_s=offline_after_s)
    return status is GatewayStatus.ONLINE
