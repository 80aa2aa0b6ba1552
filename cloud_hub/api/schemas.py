"""Response models (…Public). Lists are ``{data: [...], count: n}``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from campus_protocol.messages import DeviceStatus, Severity
from cloud_hub.alerts.lifecycle import AlertState, Transition
from cloud_hub.db.models import AlertSource, Approval, DeviceCommandStatus
from cloud_hub.status import GatewayStatus, SchoolStatus

#: a device's id on its gateway, as a path segment
DeviceKeyPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

#: a gateway's id as a path segment
GatewayKeyPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

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
    profile_known: bool  # False: this hub has no such profile (its telemetry is refused)
    protocol: str
    status: DeviceStatus
    approval: Approval  # only approved devices count and raise alerts
    completeness_24h: float | None  # share of expected windows received over 24 h
    last_ok_at: datetime | None
    last_error: str
    values: dict[str, ValuePublic]


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class LevelPublic(BaseModel):
    code: Severity
    name: str
    colour: str  # red | orange | yellow | blue


class AlertChangePublic(BaseModel):
    at: datetime
    transition: Transition
    from_state: AlertState | None  # None for the raise that opened the alert
    to_state: AlertState
    actor: str
    comment: str


class AlertPublic(BaseModel):
    id: int
    school_id: str | None
    gateway_id: str
    device: str
    point: str
    rule: str
    severity: Severity
    level: LevelPublic
    state: AlertState
    source: AlertSource
    opened_at: datetime  # first seen
    last_seen_at: datetime
    occurrences: int
    cleared_at: datetime | None  # when the condition last went back to normal
    value: float
    threshold: float
    standard: str
    message: str
    acknowledged_at: datetime | None
    acknowledged_by: str
    resolved_at: datetime | None
    resolved_by: str
    escalated_to: str  # school | district | city
    escalated_at: datetime | None


class AlertDetail(AlertPublic):
    changes: list[AlertChangePublic]


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
    attempts: int  # writes the gateway tried before its result (0: not executed)
    origin: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


class AlertComment(BaseModel):
    """What ``ack`` and ``resolve`` take (the body is optional)."""

    comment: str = Field(default="", max_length=500)


class SeriesBucket(BaseModel):
    t: datetime  # start of the bucket
    min: float
    max: float
    mean: float  # weighted by sample count
    count: int  # samples folded in


class SeriesPublic(BaseModel):
    device: str
    gateway_id: str
    point: str
    unit: str
    since: datetime = Field(serialization_alias="from")
    until: datetime = Field(serialization_alias="to")
    bucket_s: float
    data: list[SeriesBucket]


class SchoolCounts(BaseModel):
    total: int
    online: int
    degraded: int
    offline: int


class DistrictPublic(BaseModel):
    id: str
    name: str
    city_id: str
    schools: SchoolCounts
    active_alerts: dict[str, int]  # by level: {"I": 0, "II": 1, "III": 0, "IV": 2}


class DistrictsPublic(BaseModel):
    data: list[DistrictPublic]
    count: int


class RoomDetail(BaseModel):
    id: str
    name: str
    type: str
    gateway_id: str
    devices: list[DevicePublic]


class SchoolDetail(SchoolPublic):
    """One school: its summary, its rooms with their devices and latest values, and its active
    alerts (newest first)."""

    rooms: list[RoomDetail]
    active_alerts: list[AlertPublic]


# ---- at a central hub: the same lists, as the regional hubs reported them -------------------


class ReportedBy(BaseModel):
    """At a central hub: the regional hub that reports a school, and what it last saw there."""

    regional_hub: str
    regional_hub_online: bool | None  # None: the regional hub never published its state
    reported_at: datetime  # when the regional hub took this view
    last_seen_at: datetime | None  # the school's newest gateway heartbeat
    gateways: int
    gateways_online: int


class ReportedSchoolPublic(SchoolPublic):
    reported_by: ReportedBy


class ReportedSchoolsPublic(BaseModel):
    data: list[ReportedSchoolPublic]
    count: int


class ReportedDistrictPublic(DistrictPublic):
    regional_hub: str
    regional_hub_online: bool | None
    last_report_at: datetime


class ReportedDistrictsPublic(BaseModel):
    data: list[ReportedDistrictPublic]
    count: int


class ReportedAlertPublic(BaseModel):
    """An alert of a regional hub as its forwarded transitions say; acting on it, and its
    readings, are at that regional hub."""

    id: str  # "<regional hub>:<its alert id>", unique across the city
    regional_hub: str
    alert_id: int  # the regional hub's own id
    school_id: str | None
    district_id: str | None
    device: str
    rule: str
    severity: Severity
    level: LevelPublic
    state: str  # the state it entered last: open | acknowledged | resolved
    opened_at: datetime
    changed_at: datetime  # its newest transition
    message: str


class ReportedAlertsPublic(BaseModel):
    data: list[ReportedAlertPublic]
    count: int


class TierPublic(BaseModel):
    """Which tier this hub is, and (at a central hub) who reports the schools in your scope."""

    role: str  # regional | central
    schools: int
    regional_hubs: list[str]  # empty at a regional hub
    regional_hubs_offline: int  # whose retained state (or will) says offline
