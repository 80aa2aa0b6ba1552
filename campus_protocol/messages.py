"""One pydantic model per message kind: the bodies carried inside an ``Envelope``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import orjson
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
    # federation: a regional hub's uplink to the central hub
    ROLLUP = "rollup"
    ALERTCHANGE = "alertchange"
    FLEET = "fleet"
    KPIS = "kpis"


#: what a regional hub forwards to the central hub (and a gateway never sends)
FEDERATION_KINDS = frozenset(
    {MessageKind.ROLLUP, MessageKind.ALERTCHANGE, MessageKind.FLEET, MessageKind.KPIS}
)
UPLINK_KINDS = frozenset(
    {
        MessageKind.TELEMETRY,
        MessageKind.EVENT,
        MessageKind.HEALTH,
        MessageKind.STATE,
        MessageKind.CMDRES,
        MessageKind.REPORTED,
        *FEDERATION_KINDS,
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
    p95: FiniteFloat | None = None  # 95th percentile (linear interpolation); absent from old agents
    unit: Label = ""

    @model_validator(mode="after")
    def _ordered(self) -> PointStats:
        if not (self.min <= self.mean <= self.max and self.min <= self.last <= self.max):
            raise ValueError("stats must satisfy min <= mean, last <= max")
        if self.p95 is not None and not self.min <= self.p95 <= self.max:
            raise ValueError("stats must satisfy min <= p95 <= max")
        return self


class Sample(Body):
    """One value at the moment it was acquired: a raw pass-through reading or a state change."""

    at: AwareDatetime
    value: FiniteFloat


class Telemetry(Body):
    """One device's aggregated readings over one window ``[window_start, window_end)``."""

    device: Identifier
    profile: Identifier
    room: Identifier
    window_start: AwareDatetime
    window_end: AwareDatetime
    points: dict[Identifier, PointStats] = Field(min_length=1, max_length=512)
    # Per point, in acquisition order: every reading of a raw pass-through point and every change
    # of a discrete (change-of-value) point, so a state change is never hidden inside a window.
    samples: dict[Identifier, list[Sample]] = Field(default_factory=dict, max_length=512)

    @model_validator(mode="after")
    def _window_forward(self) -> Telemetry:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


MAX_BATCH_WINDOWS = 1024


class TelemetryBatch(Body):
    """Many device windows in one message (kind ``telemetry``; told apart by ``windows``).

    Fewer, larger messages are cheaper for the outbox, the broker, the uplink and the hub. The
    hub stores each window as if it had come alone; one window it cannot store (an unknown
    profile) is counted and skipped, the others are kept.
    """

    windows: list[Telemetry] = Field(min_length=1, max_length=MAX_BATCH_WINDOWS)


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
    """A rule fired or cleared at the edge.

    One event is active per (device, rule): a raise while it is active carries a higher ``count``
    (a repeat, not a new alert). ``flapping`` marks the one event that stands for a condition
    raising again and again. A source that is down as a whole (a Modbus TCP converter, the site
    broker) raises one event with ``device`` = the source and ``devices`` = the devices behind it.
    """

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
    count: int = Field(default=1, ge=1)
    flapping: bool = False
    devices: list[Identifier] = Field(default_factory=list, max_length=1024)


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


class OutboxHealth(Body):
    """The outbox's disk budget as the heartbeat reports it (counts since the outbox's epoch).

    ``discarded`` counts rows dropped without delivery by ``<lane>:<reason>`` (``disk_budget``,
    ``too_large``, ``invalid_body``, ``disk_full``, ``read_only``, ...). ``merged_windows`` counts
    telemetry windows combined with others; ``discarded_windows`` the windows inside dropped rows.
    ``offline_autonomy_h``: hours until the budget is full at the current rate, before merging
    (absent until the agent has written for a while).
    """

    bytes: int = Field(ge=0)
    budget_bytes: int = Field(ge=1)
    offline_autonomy_h: FiniteFloat | None = Field(default=None, ge=0)
    merged_windows: int = Field(default=0, ge=0)
    discarded_windows: int = Field(default=0, ge=0)
    discarded: dict[Identifier, int] = Field(default_factory=dict, max_length=64)
    disk: Identifier = "ok"  # "ok", "disk_full", "read_only" or "io_error"


class Health(Body):
    """The gateway heartbeat: identity, uptime, queue depth and per-device states."""

    site: SiteIdentity
    agent_version: Label
    started_at: AwareDatetime
    uptime_s: FiniteFloat = Field(ge=0)
    heartbeat_interval_s: FiniteFloat = Field(gt=0)
    outbox_depth: int = Field(ge=0)
    devices: list[DeviceHealth] = Field(max_length=1024)
    outbox: OutboxHealth | None = None  # absent from older agents


class State(Body):
    """Retained online/offline state of a node; the offline form is also its MQTT will."""

    online: bool


class HubSession(Body):
    """The hub's retained marker on ``HUB_SESSION_TOPIC``: its persistent session (which queues
    every uplink while it is away) exists on this broker since ``at``. Not an envelope kind."""

    role: Literal["regional", "central"]
    at: AwareDatetime


class Command(Body):
    """A request to a gateway: ``name`` ``write`` (args ``point``, ``value``) or ``action``
    (args ``action``) on ``device``; refused once ``expires_at`` has passed."""

    id: Identifier
    name: Identifier
    device: Identifier | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    expires_at: AwareDatetime | None = None


class CommandStatus(StrEnum):
    ACCEPTED = "accepted"  # received and valid; it will be executed
    SUCCEEDED = "succeeded"  # executed and read back as requested
    FAILED = "failed"  # executed, but the device refused or read back something else
    REJECTED = "rejected"  # refused before execution (unknown device, read-only, out of range...)
    EXPIRED = "expired"  # arrived after its expiry


class CommandResult(Body):
    """The answer to a command, or (``origin`` local) the audit record of a local action."""

    id: Identifier
    ok: bool
    detail: Label = ""
    status: CommandStatus | None = None
    origin: Literal["hub", "local"] = "hub"
    device: Identifier | None = None
    target: Label = ""  # the point written or the action run
    value: FiniteFloat | None = None
    readback: FiniteFloat | None = None
    attempts: int = Field(default=0, ge=0)
    at: AwareDatetime | None = None


class ConfigDesired(Body):
    revision: int = Field(ge=0)
    config: dict[str, Any]


class Reported(Body):
    revision: int = Field(ge=0)
    applied: bool
    detail: Label = ""


# -- federation: regional hub -> central hub ------------------------------------------------------

MAX_FEDERATION_ITEMS = 1024


class RollupPeriod(StrEnum):
    FIVE_MINUTES = "5m"
    HOUR = "1h"

    @property
    def seconds(self) -> int:
        return 300 if self is RollupPeriod.FIVE_MINUTES else 3600


class PointRollup(Body):
    """One point over every device window of a school in one period."""

    windows: int = Field(ge=1)  # device windows that carried the point
    count: int = Field(ge=1)  # readings in them
    min: FiniteFloat
    max: FiniteFloat
    mean: FiniteFloat  # count-weighted
    unit: Label = ""

    @model_validator(mode="after")
    def _ordered(self) -> PointRollup:
        if not self.min <= self.mean <= self.max:
            raise ValueError("rollup must satisfy min <= mean <= max")
        return self


class SchoolRollup(Body):
    """A school's telemetry over one period ``[period_start, period_start + period)``, whole:
    a later rollup of the same school and period replaces it (late windows arrived)."""

    school_id: Identifier
    district_id: Identifier
    period: RollupPeriod
    period_start: AwareDatetime
    devices: int = Field(ge=0)
    points: dict[Identifier, PointRollup] = Field(max_length=512)


class Rollups(Body):
    """Per-school rollups (kind ``rollup``)."""

    rollups: list[SchoolRollup] = Field(min_length=1, max_length=MAX_FEDERATION_ITEMS)


class AlertChange(Body):
    """One transition of an alert at a regional hub (``alert_id`` is the regional's own id)."""

    alert_id: int = Field(ge=0, lt=2**63)
    school_id: Identifier | None = None
    district_id: Identifier | None = None
    device: Identifier
    rule: Identifier
    severity: Severity
    state: Identifier  # the state entered: e.g. open, acknowledged, resolved
    at: AwareDatetime
    message: Label = ""


class AlertChanges(Body):
    """Alert transitions in the order they happened (kind ``alertchange``)."""

    changes: list[AlertChange] = Field(min_length=1, max_length=MAX_FEDERATION_ITEMS)


class SchoolStatusCode(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class SchoolHealthSummary(Body):
    """A school as its regional hub sees it: status, gateways and devices online."""

    site: SiteIdentity
    status: SchoolStatusCode
    gateways: int = Field(ge=0)
    gateways_online: int = Field(ge=0)
    devices: int = Field(ge=0)
    devices_online: int = Field(ge=0)
    last_seen_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _within(self) -> SchoolHealthSummary:
        if self.gateways_online > self.gateways or self.devices_online > self.devices:
            raise ValueError("online counts must not exceed the totals")
        return self


class FleetHealth(Body):
    """Every school of a regional hub at ``at`` (kind ``fleet``): the newest replaces the rest."""

    at: AwareDatetime
    schools: list[SchoolHealthSummary] = Field(max_length=MAX_FEDERATION_ITEMS)


class KpiFigure(Body):
    """One KPI as a numerator over a denominator, so the central hub can sum districts."""

    kpi: Identifier
    value: FiniteFloat | None = None
    numerator: FiniteFloat = Field(ge=0)
    denominator: FiniteFloat = Field(ge=0)


class DistrictKpis(Body):
    district_id: Identifier
    city_id: Identifier
    schools: int = Field(ge=0)
    figures: list[KpiFigure] = Field(max_length=64)


class KpiSnapshot(Body):
    """The KPIs of each district of a regional hub at ``at`` (kind ``kpis``)."""

    at: AwareDatetime
    districts: list[DistrictKpis] = Field(min_length=1, max_length=MAX_FEDERATION_ITEMS)


#: the body model of each kind; a ``telemetry`` body may also be a ``TelemetryBatch``
BODY_MODELS: dict[MessageKind, type[Body]] = {
    MessageKind.TELEMETRY: Telemetry,
    MessageKind.EVENT: Event,
    MessageKind.HEALTH: Health,
    MessageKind.STATE: State,
    MessageKind.CMDRES: CommandResult,
    MessageKind.REPORTED: Reported,
    MessageKind.CMD: Command,
    MessageKind.CONFIG: ConfigDesired,
    MessageKind.ROLLUP: Rollups,
    MessageKind.ALERTCHANGE: AlertChanges,
    MessageKind.FLEET: FleetHealth,
    MessageKind.KPIS: KpiSnapshot,
}

#: body model -> kind, including the models a kind accepts besides its ``BODY_MODELS`` entry
BODY_KINDS: dict[type[Body], MessageKind] = {
    **{model: kind for kind, model in BODY_MODELS.items()},
    TelemetryBatch: MessageKind.TELEMETRY,
}


_BodyT = TypeVar("_BodyT", bound=Body)


def trusted(model: type[_BodyT], **values: Any) -> _BodyT:
    """A ``model`` instance from ``values`` the caller computed and guarantees valid, skipping
    validation (as ``model_construct`` does, without its per-field Python work): the hot path of
    a gateway that builds thousands of windows a second. Every field must be given, with its
    final type (nested models already built). Never use it on input from outside."""
    instance = object.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


def body_model(kind: MessageKind, raw: object) -> type[Body]:
    """The model to validate the untrusted JSON ``raw`` body of ``kind`` with."""
    if kind is MessageKind.TELEMETRY and isinstance(raw, dict) and "windows" in raw:
        return TelemetryBatch
    return BODY_MODELS[kind]


def parse_body_json(kind: MessageKind, data: bytes) -> Body:
    """Validate a body stored as JSON (an outbox row) against the model its shape calls for.

    Raises pydantic's ``ValidationError`` when it fits no model of ``kind``.
    """
    if kind is not MessageKind.TELEMETRY:
        return BODY_MODELS[kind].model_validate_json(data)
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Telemetry.model_validate_json(data)  # raises the ValidationError that says why
    return body_model(kind, raw).model_validate(raw)
