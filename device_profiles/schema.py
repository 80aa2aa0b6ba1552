"""Device profiles as data: the pydantic models every profile YAML is validated against."""

from __future__ import annotations

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
    FLOAT32 = "float32"
    FLOAT64 = "float64"


#: data type -> number of 16-bit registers it occupies (the one table cross-field rules use)
REGISTER_COUNT: dict[RegisterType, int] = {
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
}


class RegisterTable(StrEnum):
    HOLDING = "holding"  # function code 03
    INPUT = "input"  # function code 04


class Order(StrEnum):
    BIG = "big"
    LITTLE = "little"


class RegisterPoint(Strict):
    """One value in a Modbus register map: ``value = raw * scale + offset``."""

    name: PointName
    table: RegisterTable = RegisterTable.HOLDING
    address: int = Field(ge=0, le=65535)
    type: RegisterType
    word_order: Order | None = None  # default: the map's word_order
    byte_order: Order | None = None  # default: the map's byte_order
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    bit: int | None = Field(default=None, ge=0, le=15)  # extract one status bit (16-bit types only)
    nonzero: bool = False  # report 1 when raw != 0 else 0 (e.g. a lamp is on when its level > 0)
    error_value: int | None = None  # raw sentinel the device reports for "no reading"
    writable: bool = False
    write_only: bool = False  # a write register the device cannot read back: never polled
    description: str = ""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RegisterPoint:
        if self.scale == 0:
            raise ValueError(f"scale: must be non-zero (got {self.scale})")
        if self.bit is not None and REGISTER_COUNT[self.type] != 1:
            raise ValueError(f"bit: illegal with type {self.type.value} (16-bit types only)")
        if self.bit is not None and self.nonzero:
            raise ValueError("bit and nonzero are exclusive")
        is_float = self.type in (RegisterType.FLOAT32, RegisterType.FLOAT64)
        if self.error_value is not None and is_float:
            raise ValueError(f"error_value: illegal with type {self.type.value}")
        if self.write_only and not self.writable:
            raise ValueError("write_only: needs writable: true")
        end = self.address + REGISTER_COUNT[self.type]
        if end > 65536:
            raise ValueError(
                f"address: {self.type.value} at {self.address} runs past register 65535"
            )
        return self

    @property
    def register_count(self) -> int:
        return REGISTER_COUNT[self.type]


class ModbusMap(Strict):
    """How to read a Modbus device: defaults, request limits and the register points."""

    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    default_unit_id: int = Field(default=1, ge=0, le=247)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    max_registers_per_read: int = Field(default=120, ge=1, le=125)
    max_gap: int = Field(default=8, ge=0, le=64)  # read across holes up to this many registers
    points: list[RegisterPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ModbusMap:
        seen: set[str] = set()
        for point in self.points:
            if point.name in seen:
                raise ValueError(f"points: name {point.name!r} duplicated")
            seen.add(point.name)
            if point.register_count > self.max_registers_per_read:
                raise ValueError(
                    f"max_registers_per_read: {self.max_registers_per_read} is less than the"
                    f" {point.register_count} registers of point {point.name!r}"
                )
        return self


class MqttValueType(StrEnum):
    NUMBER = "number"
    BOOL = "bool"
    ENUM = "enum"


class MqttPoint(Strict):
    """One value in a JSON payload, found by a dotted path."""

    name: PointName
    path: str = Field(min_length=1)  # dotted JSON path, e.g. "storage.free_gb"
    type: MqttValueType = MqttValueType.NUMBER
    enum: dict[str, int] | None = None  # ENUM: payload string -> numeric code
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _enum_needs_map(self) -> MqttPoint:
        if (self.type is MqttValueType.ENUM) != (self.enum is not None):
            raise ValueError("enum: required exactly when type is enum")
        if self.scale == 0:
            raise ValueError(f"scale: must be non-zero (got {self.scale})")
        return self


class MqttMapping(Strict):
    """A device that publishes JSON on the site broker under ``<device topic>/<suffix>``."""

    topic_suffix: str = Field(default="status", pattern=r"^[A-Za-z0-9_/-]+$")
    expected_interval_s: float = Field(default=10.0, gt=0)  # offline after 3 silent intervals
    points: list[MqttPoint] = Field(min_length=1)


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
        if self.modbus is not None:
            return [p.name for p in self.modbus.points]
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
        return []

    def unit_of(self, point: str) -> str:
        points = self.modbus.points if self.modbus is not None else self.mqtt.points  # type: ignore[union-attr]
        return next((p.unit for p in points if p.name == point), "")
