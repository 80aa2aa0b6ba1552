"""Device profiles as data: the pydantic models every profile YAML is validated against."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campus_protocol.messages import Severity
from device_profiles.rules import (
    AlertRule,
    Comparison,
    NamedAction,
    WindowStat,
    WriteLimit,
    check_rules_and_actions,
)
from device_profiles.units import UnknownConversion, conversion

__all__ = ["AlertRule", "Comparison", "NamedAction", "Severity", "WindowStat", "WriteLimit"]

PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ProfileId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # ``length`` registers of text, two bytes each
    BOOL = "bool"  # one coil or discrete input


#: data type -> number of 16-bit registers it occupies (strings: their ``length``)
REGISTER_COUNT: dict[RegisterType, int] = {
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.INT64: 4,
    RegisterType.UINT64: 4,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
    RegisterType.BOOL: 1,
}
#: types whose registers hold one number (every type but string and bool)
NUMBER_TYPES: tuple[RegisterType, ...] = tuple(
    t for t in REGISTER_COUNT if t is not RegisterType.BOOL
)
INTEGER_TYPES = frozenset(
    {
        RegisterType.INT16,
        RegisterType.UINT16,
        RegisterType.INT32,
        RegisterType.UINT32,
        RegisterType.INT64,
        RegisterType.UINT64,
    }
)


class RegisterTable(StrEnum):
    HOLDING = "holding"  # function code 03 (write 06/16)
    INPUT = "input"  # function code 04
    COIL = "coil"  # function code 01 (write 05/15)
    DISCRETE_INPUT = "discrete_input"  # function code 02

    @property
    def is_bits(self) -> bool:
        return self in (RegisterTable.COIL, RegisterTable.DISCRETE_INPUT)

    @property
    def is_writable(self) -> bool:
        return self in (RegisterTable.HOLDING, RegisterTable.COIL)


class ReportMode(StrEnum):
    """How a point travels to the hub besides its window statistics."""

    WINDOW = "window"  # statistics only
    CHANGE = "change"  # plus one sample per change of value (discrete states: relays, modes)
    RAW = "raw"  # plus every reading as a sample (raw pass-through)


class Order(StrEnum):
    BIG = "big"
    LITTLE = "little"


class RegisterPoint(Strict):
    """One value in a Modbus register map: ``value = raw * scale + offset``.

    ``raw`` is the register value, or the ``bits``-wide field at ``bit`` when ``bit`` is set, or
    the ``value_map`` entry of the raw integer (an enumeration). A raw value among
    ``error_value`` (a sentinel such as 0x7FFF) means "no reading" and is counted, not sent.
    """

    name: PointName
    table: RegisterTable = RegisterTable.HOLDING
    address: int = Field(ge=0, le=65535)
    type: RegisterType
    length: int | None = Field(default=None, ge=1, le=123)  # string: registers of text
    word_order: Order | None = None  # default: the map's word_order
    byte_order: Order | None = None  # default: the map's byte_order
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    bit: int | None = Field(default=None, ge=0, le=63)  # lowest bit of a bit field
    bits: int = Field(default=1, ge=1, le=32)  # width of the bit field at ``bit``
    nonzero: bool = False  # report 1 when raw != 0 else 0 (e.g. a lamp is on when its level > 0)
    error_value: int | float | list[int | float] | None = None  # sentinels meaning "no reading"
    value_map: dict[int, float] | None = None  # enumeration: raw code -> reported value
    report: ReportMode = ReportMode.WINDOW
    writable: bool = False
    write_only: bool = False  # a write register the device cannot read back: never polled
    description: str = ""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RegisterPoint:
        for rule in _POINT_RULES:
            problem = rule(self)
            if problem:
                raise ValueError(problem)
        end = self.address + self.register_count
        if end > 65536:
            raise ValueError(
                f"address: {self.type.value} at {self.address} runs past register 65535"
            )
        return self

    @property
    def register_count(self) -> int:
        if self.type is RegisterType.STRING:
            return self.length or 1
        return REGISTER_COUNT[self.type]

    @property
    def sentinels(self) -> tuple[float, ...]:
        if self.error_value is None:
            return ()
        if isinstance(self.error_value, list):
            return tuple(self.error_value)
        return (self.error_value,)

    @property
    def is_text(self) -> bool:
        return self.type is RegisterType.STRING


def _rule_scale(p: RegisterPoint) -> str | None:
    return f"scale: must be non-zero (got {p.scale})" if p.scale == 0 else None


def _rule_bool_table(p: RegisterPoint) -> str | None:
    if (p.type is RegisterType.BOOL) != p.table.is_bits:
        return (
            f"type: {p.type.value} illegal with table {p.table.value}"
            " (bool is for coil and discrete_input, and only bool)"
        )
    return None


def _rule_string(p: RegisterPoint) -> str | None:
    if p.type is RegisterType.STRING:
        if p.length is None:
            return "length: required with type string (registers of text)"
        if p.scale != 1 or p.offset != 0 or p.bit is not None or p.nonzero or p.value_map:
            return "type: string takes no scale, offset, bit, nonzero or value_map"
    elif p.length is not None:
        return f"length: illegal with type {p.type.value} (strings only)"
    return None


def _rule_bit(p: RegisterPoint) -> str | None:
    if p.bit is None:
        return "bits: needs bit" if p.bits != 1 else None
    if p.type not in INTEGER_TYPES:
        return f"bit: illegal with type {p.type.value} (integer types only)"
    width = 16 * REGISTER_COUNT[p.type]
    if p.bit + p.bits > width:
        return f"bit: field {p.bit}+{p.bits} runs past the {width} bits of {p.type.value}"
    if p.nonzero:
        return "bit and nonzero are exclusive"
    return None


def _rule_sentinels_and_maps(p: RegisterPoint) -> str | None:
    if p.error_value is not None and p.type in (RegisterType.STRING, RegisterType.BOOL):
        return f"error_value: illegal with type {p.type.value}"
    if p.value_map is not None and (p.type not in INTEGER_TYPES or p.bit is not None or p.nonzero):
        return "value_map: needs an integer type without bit or nonzero"
    return None


def _rule_writes(p: RegisterPoint) -> str | None:
    if p.write_only and not p.writable:
        return "write_only: needs writable: true"
    if p.writable and not p.table.is_writable:
        return f"writable: illegal with table {p.table.value} (read-only)"
    return None


#: cross-field rules of a point, checked in order; each names the field and the rule it breaks
_POINT_RULES = (
    _rule_scale,
    _rule_bool_table,
    _rule_string,
    _rule_bit,
    _rule_sentinels_and_maps,
    _rule_writes,
)


class ModbusQuirks(Strict):
    """Workarounds for devices that misbehave under an ordinary poll (after Telegraf's
    ``workarounds``). Request shaping lives beside them: ``max_registers_per_read`` and
    ``max_gap`` on the map."""

    pause_after_connect_s: float = Field(default=0.0, ge=0, le=10)
    pause_between_requests_s: float = Field(default=0.0, ge=0, le=10)
    one_request_per_field: bool = False  # never coalesce: one read per point
    close_after_poll: bool = False  # drop the connection after every poll


class ModbusMap(Strict):
    """How to read a Modbus device: defaults, request limits and the register points."""

    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    default_unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    max_registers_per_read: int = Field(default=120, ge=1, le=125)
    max_gap: int = Field(default=8, ge=0, le=64)  # read across holes up to this many registers
    quirks: ModbusQuirks = ModbusQuirks()
    points: list[RegisterPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ModbusMap:
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise ValueError(f"points: name {point.name!r} duplicated")
            seen.add(point.name)
            if not point.table.is_bits and point.register_count > self.max_registers_per_read:
                raise ValueError(
                    f"max_registers_per_read: {self.max_registers_per_read} is less than the"
                    f" {point.register_count} registers of point {point.name!r}"
                )
        return self


class MqttValueType(StrEnum):
    NUMBER = "number"
    BOOL = "bool"
    ENUM = "enum"


_PATH = re.compile(r"^(\$\.)?[^.\[\]]+(\[\d+\])*(\.[^.\[\]]+(\[\d+\])*)*$")


class MqttPoint(Strict):
    """One value in a JSON payload, found by a dotted path."""

    name: PointName
    path: str = Field(min_length=1)  # dotted JSON path: "storage.free_gb", "$.ch[1].temp"
    type: MqttValueType = MqttValueType.NUMBER
    enum: dict[str, int] | None = None  # ENUM: payload string -> numeric code
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    source_unit: str | None = None  # the payload's unit, converted to ``unit`` (units.py)
    report: ReportMode = ReportMode.WINDOW
    writable: bool = False  # a command may set it: ``{<path>: <value>}`` on the command topic
    description: str = ""

    @model_validator(mode="after")
    def _enum_needs_map(self) -> MqttPoint:
        if self.source_unit is not None:
            try:
                conversion(self.source_unit, self.unit)
            except UnknownConversion as exc:
                raise ValueError(f"source_unit: {exc}") from None
            if self.type is not MqttValueType.NUMBER:
                raise ValueError(f"source_unit: illegal with type {self.type.value} (numbers only)")
        if not _PATH.match(self.path):
            raise ValueError(
                f"path: {self.path!r} is not a dotted JSON path (a.b, a.list[0].c, $.a)"
            )
        if (self.type is MqttValueType.ENUM) != (self.enum is not None):
            raise ValueError("enum: required exactly when type is enum")
        if self.scale == 0:
            raise ValueError(f"scale: must be non-zero (got {self.scale})")
        return self


def _below(base: str, suffix: str) -> str:
    """``<base>/<suffix>``, or ``base`` itself when the suffix is empty."""
    return f"{base.rstrip('/')}/{suffix}" if suffix else base.rstrip("/")


class MqttCommand(Strict):
    """How a device takes set commands: a JSON object ``{<point path>: <value>}`` published QoS 1
    on ``<device topic>/<topic_suffix>`` (the ``.../set`` convention of Zigbee2MQTT and
    Home Assistant's MQTT lights). The device confirms by publishing its state: a write counts as
    read back when a state report shows the value within ``confirm_timeout_s``."""

    topic_suffix: str = Field(default="set", pattern=r"^[A-Za-z0-9_/-]+$")
    confirm_timeout_s: float = Field(default=5.0, gt=0, le=60)


class MqttMapping(Strict):
    """A device that publishes JSON on the site broker under ``<device topic>/<suffix>`` (on the
    device topic itself when ``topic_suffix`` is empty, as Zigbee2MQTT does)."""

    topic_suffix: str = Field(default="status", pattern=r"^[A-Za-z0-9_/-]*$")
    expected_interval_s: float = Field(default=10.0, gt=0)  # offline after 3 silent intervals
    # the device publishes its state retained (Zigbee2MQTT's per-device ``retain`` option), so a
    # subscriber that (re)starts sees the current state at once, not after the next report
    retain: bool = False
    command: MqttCommand | None = None  # needed exactly when a point is writable
    points: list[MqttPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _commands_need_writable_points(self) -> MqttMapping:
        writable = [p.name for p in self.points if p.writable]
        if writable and self.command is None:
            raise ValueError(f"command: required with writable points ({', '.join(writable)})")
        if self.command is not None and not writable:
            raise ValueError("command: no point is writable (mark one writable: true)")
        return self

    def state_topic(self, device_topic: str) -> str:
        """Where a device with base topic ``device_topic`` publishes its state."""
        return _below(device_topic, self.topic_suffix)

    def device_topic(self, state_topic: str) -> str | None:
        """The device topic whose state topic is ``state_topic`` (None: it is not one)."""
        if not self.topic_suffix:
            return state_topic
        base, slash, suffix = state_topic.rpartition("/" + self.topic_suffix)
        return base if slash and base and not suffix else None

    def command_topic(self, device_topic: str) -> str:
        """Where that device takes set commands (only for mappings with ``command``)."""
        assert self.command is not None
        return _below(device_topic, self.command.topic_suffix)


class OfflineAlarm(Strict):
    """When the hub raises an alert for a device of this type that stays offline: after
    ``after_s`` seconds offline, at ``level`` (default III for safety devices, IV otherwise);
    ``enabled: false`` never raises one."""

    enabled: bool = True
    after_s: float = Field(default=300.0, gt=0, le=7 * 86400)
    level: Severity | None = None


class Profile(Strict):
    """A device type: identity, protocol mapping and default alert rules."""

    id: ProfileId
    name: str
    domain: Literal["lighting", "environment", "safety", "energy", "recording", "lab", "canteen"]
    vendor: str = ""
    model: str = ""
    protocol: Literal["modbus", "mqtt"]
    references: list[str] = Field(default_factory=list)
    modbus: ModbusMap | None = None
    mqtt: MqttMapping | None = None
    alerts: list[AlertRule] = Field(default_factory=list)
    actions: list[NamedAction] = Field(default_factory=list)
    writes: dict[str, WriteLimit] = Field(default_factory=dict)
    offline_alarm: OfflineAlarm = Field(default_factory=OfflineAlarm)

    @property
    def offline_level(self) -> Severity:
        """The level of this device type's offline alert."""
        if self.offline_alarm.level is not None:
            return self.offline_alarm.level
        return Severity.III if self.domain == "safety" else Severity.IV

    @model_validator(mode="after")
    def _mapping_matches_protocol(self) -> Profile:
        if self.protocol == "modbus" and (self.modbus is None or self.mqtt is not None):
            raise ValueError("protocol: modbus needs a modbus: map and no mqtt: mapping")
        if self.protocol == "mqtt" and (self.mqtt is None or self.modbus is not None):
            raise ValueError("protocol: mqtt needs an mqtt: mapping and no modbus: map")
        check_rules_and_actions(
            alerts=self.alerts,
            actions=self.actions,
            writes=self.writes,
            readable=set(self.readable_points),
            writable=set(self.writable_points),
        )
        return self

    @property
    def point_names(self) -> list[str]:
        """Names of the numeric points (the ones that go into telemetry windows)."""
        if self.modbus is not None:
            return [p.name for p in self.modbus.points if not p.is_text]
        assert self.mqtt is not None
        return [p.name for p in self.mqtt.points]

    @property
    def readable_points(self) -> list[str]:
        """Points a poll or payload reports (not write-only registers)."""
        if self.modbus is not None:
            return [p.name for p in self.modbus.points if not p.write_only]
        return self.point_names

    @property
    def writable_points(self) -> list[str]:
        if self.modbus is not None:
            return [p.name for p in self.modbus.points if p.writable]
        assert self.mqtt is not None
        return [p.name for p in self.mqtt.points if p.writable]

    def points_reporting(self, mode: ReportMode) -> frozenset[str]:
        """Names of the points whose ``report`` is ``mode``."""
        points = self.modbus.points if self.modbus is not None else self.mqtt.points  # type: ignore[union-attr]
        return frozenset(p.name for p in points if p.report is mode)

    def unit_of(self, point: str) -> str:
        points = self.modbus.points if self.modbus is not None else self.mqtt.points  # type: ignore[union-attr]
        return next((p.unit for p in points if p.name == point), "")
