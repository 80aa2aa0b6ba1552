"""Response models (…Public). Lists are ``{data: [...], count: n}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from campus_protocol.messages import DeviceStatus, Severity
from cloud_hub.db.models import AlertSource, AlertState, DeviceCommandStatus
from cloud_hub.status import GatewayStatus, SchoolStatus

#: query-parameter form of an id: bounded and printable, so hostile values get 422, not 500
IdQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


class DistrictRef(BaseModel):
    id: str
    name: str


class GatewayRef(BaseModel):
    id: str
    status: GatewayStatus
    last_seen_at: datetime | None


class DeviceCounts(BaseModel):
    total: int
    online: int
    offline: int  # every device not online (offline or unknown)


class SchoolPublic(BaseModel):
    id: str
    name: str
    district: DistrictRef
    city_id: str
    gateway: GatewayRef | None
    status: SchoolStatus
    devices: DeviceCounts


class SchoolsPublic(BaseModel):
    data: list[SchoolPublic]
    count: int


class RoomRef(BaseModel):
    id: str
    name: str


class ValuePublic(BaseModel):
    value: float
    unit: str
    at: datetime


class DevicePublic(BaseModel):
    id: str
    gateway_id: str
    school_id: str | None
    room: RoomRef | None
    profile: str
    protocol: str
    status: DeviceStatus
    last_ok_at: datetime | None
    last_error: str
    values: dict[str, ValuePublic]


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class AlertPublic(BaseModel):
    id: int
    school_id: str | None
    gateway_id: str
    device: str
    point: str
    rule: str
    severity: Severity
    state: AlertState
    source: AlertSource
    opened_at: datetime
    cleared_at: datetime | None
    value: float
    threshold: float
    standard: str
    message: str


class AlertsPublic(BaseModel):
    data: list[AlertPublic]
    count: int


class CommandCreate(BaseModel):
    """A point write (``point`` and ``value``) or a named action of the device's profile."""

    model_config = ConfigDict(extra="forbid")

    point: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    value: float | None = Field(default=None, allow_inf_nan=False)
    action: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    ttl_s: float = Field(default=60.0, ge=1, le=86_400)  # expires if not delivered by then

    @model_validator(mode="after")
    def _write_or_action(self) -> CommandCreate:
        write = self.point is not None or self.value is not None
        if write == (self.action is not None):
            raise ValueError("give either point and value, or action")
        if write and (self.point is None or self.value is None):
            raise ValueError("a write needs both point and value")
        return self


class CommandPublic(BaseModel):
    id: str
    gateway_id: str
    device: str
    name: str
    target: str
    value: float | None
    status: DeviceCommandStatus
    detail: str
    readback: float | None
    origin: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
