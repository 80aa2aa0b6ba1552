"""One pydantic model per message kind: the bodies carried inside an ``Envelope``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Identifier = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Label = Annotated[str, Field(max_length=200)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class MessageKind(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    HEALTH = "health"
    STATE = "state"
    CMDRES = "cmdres"
    REPORTED = "reported"
    CMD = "cmd"
    CONFIG = "config"


UPLINK_KINDS = frozenset(
    {
        MessageKind.TELEMETRY,
        MessageKind.EVENT,
        MessageKind.HEALTH,
        MessageKind.STATE,
        MessageKind.CMDRES,
        MessageKind.REPORTED,
    }
)
DOWNLINK_KINDS = frozenset({MessageKind.CMD, MessageKind.CONFIG})


class Body(BaseModel):
    """Base of every message body: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteIdentity(Body):
    """Where a gateway sits in the city -> district -> school topology."""

    city_id: Identifier
    city_name: Label = ""
    district_id: Identifier
    district_name: Label = ""
    school_id: Identifier
    school_name: Label = ""


class PointStats(Body):
    """Aggregate of one point over one window."""

    count: int = Field(ge=1)
    min: FiniteFloat
    max: FiniteFloat
    mean: FiniteFloat
    last: FiniteFloat
    unit: Label = ""

    @model_validator(mode="after")
    def _ordered(self) -> PointStats:
        if not (self.min <= self.mean <= self.max and self.min <= self.last <= self.max):
            raise ValueError("stats must satisfy min <= mean, last <= max")
        return self


class Telemetry(Body):
    """One device's aggregated readings over one window ``[window_start, window_end)``."""

    device: Identifier
    profile: Identifier
    room: Identifier
    window_start: AwareDatetime
    window_end: AwareDatetime
    points: dict[Identifier, PointStats] = Field(min_length=1, max_length=512)

    @model_validator(mode="after")
    def _window_forward(self) -> Telemetry:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class Severity(StrEnum):
    """Warning levels of the Emergency Response Law: I (red) is the highest."""

    I = "I"  # noqa: E741 - the level's official name
    II = "II"
    III = "III"
    IV = "IV"


class EventState(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class Event(Body):
    """A rule fired or cleared at the edge."""

    rule: Identifier
    device: Identifier
    point: Identifier
    state: EventState
    severity: Severity
    value: FiniteFloat
    threshold: FiniteFloat
    standard: Label
    message: Label = ""
    at: AwareDatetime


class DeviceStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class DeviceHealth(Body):
    """The agent's view of one device, sent with every heartbeat."""

    device: Identifier
    profile: Identifier
    room: Identifier
    room_name: Label = ""
    protocol: Identifier
    status: DeviceStatus
    last_ok_at: AwareDatetime | None = None
    consecutive_failures: int = Field(default=0, ge=0)
    last_error: Annotated[str, Field(max_length=500)] = ""


class Health(Body):
    """The gateway heartbeat: identity, uptime, queue depth and per-device states."""

    site: SiteIdentity
    agent_version: Label
    started_at: AwareDatetime
    uptime_s: FiniteFloat = Field(ge=0)
    heartbeat_interval_s: FiniteFloat = Field(gt=0)
    outbox_depth: int = Field(ge=0)
    devices: list[DeviceHealth] = Field(max_length=1024)


class State(Body):
    """Retained online/offline state of a node; the offline form is also its MQTT will."""

    online: bool


class Command(Body):
    id: Identifier
    name: Identifier
    device: Identifier | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class CommandResult(Body):
    id: Identifier
    ok: bool
    detail: Label = ""


class ConfigDesired(Body):
    revision: int = Field(ge=0)
    config: dict[str, Any]


class Reported(Body):
    revision: int = Field(ge=0)
    applied: bool
    detail: Label = ""


BODY_MODELS: dict[MessageKind, type[Body]] = {
    MessageKind.TELEMETRY: Telemetry,
    MessageKind.EVENT: Event,
    MessageKind.HEALTH: Health,
    MessageKind.STATE: State,
    MessageKind.CMDRES: CommandResult,
    MessageKind.REPORTED: Reported,
    MessageKind.CMD: Command,
    MessageKind.CONFIG: ConfigDesired,
}
