"""AgentSettings: defaults < agent.yaml < CAMPUS_AGENT_ environment (``__`` nests) < CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from campus_config import (
    PLACEHOLDER_SECRETS,
    HubBrokerSettings,
    LayeredSettings,
    Section,
    load_layered,
)
from campus_config.yaml_locations import nearest
from campus_forward.outbox import DEFAULT_BUDGET_BYTES, DEFAULT_MERGE_WINDOW_S
from campus_protocol.messages import SiteIdentity
from campus_protocol.topics import NODE_ID_PATTERN
from device_profiles.schema import Profile
from edge_agent.rules.config import LocalAction, RuleOverride

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class SiteBrokerSettings(Section):
    """The school's local broker that MQTT devices publish to."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None


class ModbusTransport(StrEnum):
    TCP = "tcp"  # Modbus TCP (MBAP framing)
    RTU = "rtu"  # Modbus RTU on a serial line (RS-485 / RS-232)
    RTU_OVER_TCP = "rtu_over_tcp"  # RTU frames through a serial device server's TCP port


class ModbusEndpoint(Section):
    """Where a Modbus device answers. Devices with the same line (``link_key``) share one
    connection and take turns: one request at a time per TCP connection or serial line."""

    transport: ModbusTransport = ModbusTransport.TCP
    host: str | None = None  # tcp, rtu_over_tcp
    port: int = Field(default=502, ge=1, le=65535)
    serial_port: str | None = None  # rtu, e.g. /dev/ttyUSB0
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: int | None = Field(default=None, ge=0, le=247)  # default: the profile's
    poll_interval_s: float | None = Field(default=None, gt=0)  # default: the profile's
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _address_for_transport(self) -> ModbusEndpoint:
        if self.transport is ModbusTransport.RTU and not self.serial_port:
            raise ValueError("serial_port: required with transport rtu (e.g. /dev/ttyUSB0)")
        if self.transport is not ModbusTransport.RTU and not self.host:
            raise ValueError(f"host: required with transport {self.transport.value}")
        return self

    @property
    def link_key(self) -> tuple[str, str, int]:
        """The connection or line this endpoint is reached through."""
        if self.transport is ModbusTransport.RTU:
            return (self.transport.value, str(self.serial_port), 0)
        return (self.transport.value, str(self.host), self.port)

    @property
    def line_settings(self) -> tuple[int, str, int, int]:
        return (self.baudrate, self.parity, self.stopbits, self.bytesize)

    def describe(self) -> str:
        """``tcp 10.0.0.5:502`` or ``rtu /dev/ttyUSB0 9600 8N1``."""
        if self.transport is ModbusTransport.RTU:
            frame = f"{self.bytesize}{self.parity}{self.stopbits}"
            return f"rtu {self.serial_port} {self.baudrate} {frame}"
        return f"{self.transport.value} {self.host}:{self.port}"


class MqttDeviceEndpoint(Section):
    topic: str = Field(pattern=r"^[A-Za-z0-9_/-]+$")  # the device's base topic on the site broker
    # how long a set command waits for the state report confirming it (default: the profile's)
    confirm_timeout_s: float | None = Field(default=None, gt=0, le=60)


class MqttDeviceGroup(Section):
    """Many devices of one MQTT profile behind one topic pattern, found as they publish.

    ``topic`` names the level the device id comes from as ``{device}`` and, optionally, the
    room's as ``{room}`` (else ``room`` is fixed); other levels are literal or ``+``. The id is
    ``id_prefix`` + that level. At most ``max_devices`` are taken; more are counted, not added.
    """

    profile: str
    topic: str = Field(pattern=r"^[A-Za-z0-9_{}+/-]+$")  # e.g. sensors/{device}/data
    room: DeviceId | None = None
    id_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.:-]*$")
    max_devices: int = Field(default=1000, ge=1, le=20000)

    @model_validator(mode="after")
    def _placeholders(self) -> MqttDeviceGroup:
        levels = self.topic.split("/")
        if levels.count("{device}") != 1:
            raise ValueError("topic: needs one {device} level, e.g. sensors/{device}/data")
        if levels.count("{room}") > 1 or (("{room}" in levels) == (self.room is not None)):
            raise ValueError("room: give a fixed room or one {room} level in topic, not both")
        odd = [
            lv
            for lv in levels
            if ("{" in lv or "}" in lv or "+" in lv) and lv not in ("{device}", "{room}", "+")
        ]
        if odd:
            raise ValueError(f"topic: level {odd[0]!r} must be literal, + , {{device}} or {{room}}")
        return self

    @property
    def subscription(self) -> str:
        return "/".join("+" if lv in ("{device}", "{room}") else lv for lv in self.topic.split("/"))


class DeviceConfig(Section):
    id: DeviceId
    profile: str
    room: DeviceId
    room_name: str = ""
    modbus: ModbusEndpoint | None = None
    mqtt: MqttDeviceEndpoint | None = None

    @model_validator(mode="after")
    def _one_endpoint(self) -> DeviceConfig:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("exactly one of modbus: or mqtt: must be given")
        return self


class OutboxSettings(Section):
    """The store-and-forward outbox: its disk budget and how a backlog shares the uplink."""

    budget_bytes: int = Field(default=DEFAULT_BUDGET_BYTES, ge=1 << 20)  # at least 1 MiB
    merge_window_s: float = Field(default=DEFAULT_MERGE_WINDOW_S, gt=0, le=86400)
    live_share: float = Field(default=0.25, ge=0, le=1)  # of each batch, for the newest telemetry
    max_in_flight: int = Field(default=64, ge=1, le=1024)  # messages awaiting PUBACK at once


class GatewaySettings(Section):
    id: Annotated[str, Field(pattern=NODE_ID_PATTERN.pattern)]
    site: SiteIdentity


class AgentSettings(LayeredSettings):
    """Everything one edge agent needs. Profiles are checked against ``device_profiles``."""

    model_config = SettingsConfigDict(
        env_prefix="CAMPUS_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    gateway: GatewaySettings
    hub: HubBrokerSettings = HubBrokerSettings()
    site_broker: SiteBrokerSettings = SiteBrokerSettings()
    data_dir: Path = Path("./var/agent")
    outbox: OutboxSettings = OutboxSettings()
    window_s: float = Field(default=10.0, gt=0, le=900)  # up to 15 min; 1 s and up in practice
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    status_port: int | None = Field(default=None, ge=0, le=65535)  # 0 = any free port
    status_host: str = "127.0.0.1"  # the status page's listen address
    development: bool = False  # allows placeholder broker passwords
    devices: list[DeviceConfig] = Field(default_factory=list)
    mqtt_groups: list[MqttDeviceGroup] = Field(default_factory=list)
    calendar_file: Path | None = None  # the school calendar; default: the standard timetable
    rules: list[RuleOverride] = Field(default_factory=list)
    local_actions: list[LocalAction] = Field(default_factory=list)
    manual_hold_s: float = Field(default=1800.0, ge=0, le=86_400)  # a manual write holds actions

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentSettings:
        ids = [d.id for d in self.devices]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"devices: ids duplicated: {duplicated}")
        lines: dict[tuple[str, str, int], tuple[int, str, int, int]] = {}
        for index, device in enumerate(self.devices):
            if device.modbus is None or device.modbus.transport is not ModbusTransport.RTU:
                continue
            settings = lines.setdefault(device.modbus.link_key, device.modbus.line_settings)
            if settings != device.modbus.line_settings:
                raise ValueError(
                    f"devices[{index}].modbus: serial line {device.modbus.serial_port} is set up"
                    " differently by another device (baudrate, parity, stopbits, bytesize differ)"
                )
        username = self.hub.username or self.gateway.id
        if username != self.gateway.id:
            raise ValueError(
                f"hub.username: must equal gateway.id {self.gateway.id!r} "
                "(the broker ACL keys on it)"
            )
        if not self.development and self.hub.password.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "hub.password: placeholder or empty password refused outside development"
            )
        return self


def load_agent_settings(path: Path, **overrides: Any) -> AgentSettings:
    """Load ``path`` under the layering rules; ``overrides`` are CLI flags (highest priority)."""
    return load_layered(AgentSettings, path, **overrides)


def unknown_profile(
    index: int, name: str, profiles: Mapping[str, Profile], *, where: str = "devices"
) -> str:
    """The error line for a device naming a profile that is not loaded, with the nearest id."""
    known = ", ".join(sorted(profiles)) or "none loaded"
    guess = nearest(name, profiles)
    hint = f": did you mean {guess}?" if guess else ""
    return f'{where}[{index}].profile: unknown profile "{name}"{hint} (known: {known})'


def unknown_profiles_in(raw: object, profiles: Mapping[str, Profile]) -> list[str]:
    """Unknown profile ids in a config that did not validate (``raw`` is its parsed YAML), so
    they are reported with its other errors instead of after they are fixed."""
    devices = raw.get("devices") if isinstance(raw, dict) else None
    if not isinstance(devices, list):
        return []
    return [
        unknown_profile(index, device["profile"], profiles)
        for index, device in enumerate(devices)
        if isinstance(device, dict)
        and isinstance(device.get("profile"), str)
        and device["profile"] not in profiles
    ]


def check_device_profiles(settings: AgentSettings, profiles: Mapping[str, Profile]) -> list[str]:
    """Cross-check devices against the loaded profiles: one ``field.path: rule`` line each."""
    errors: list[str] = []
    for index, device in enumerate(settings.devices):
        profile = profiles.get(device.profile)
        if profile is None:
            errors.append(unknown_profile(index, device.profile, profiles))
            continue
        endpoint = "modbus" if device.modbus is not None else "mqtt"
        if profile.protocol != endpoint:
            errors.append(
                f'devices[{index}].{endpoint}: profile "{profile.id}" speaks {profile.protocol}, '
                f"so the device needs a {profile.protocol}: endpoint"
            )
    for index, group in enumerate(settings.mqtt_groups):
        profile = profiles.get(group.profile)
        if profile is None:
            errors.append(unknown_profile(index, group.profile, profiles, where="mqtt_groups"))
        elif profile.protocol != "mqtt":
            errors.append(
                f'mqtt_groups[{index}].profile: profile "{profile.id}" speaks {profile.protocol},'
                " not mqtt"
            )
        elif not _commandable_pattern(group.topic, profile):
            assert profile.mqtt is not None and profile.mqtt.command is not None
            state, command = profile.mqtt.topic_suffix, profile.mqtt.command.topic_suffix
            errors.append(
                f'mqtt_groups[{index}].topic: profile "{profile.id}" reports on <device>/{state}'
                f' and takes commands on <device>/{command}, so the topic must end in "/{state}"'
            )
    return errors


def _commandable_pattern(topic: str, profile: Profile) -> bool:
    """Whether a group's devices can be told their command topic (or take no commands)."""
    mapping = profile.mqtt
    return mapping is None or mapping.command is None or mapping.device_topic(topic) is not None
