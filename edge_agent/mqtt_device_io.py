"""``DeviceIO`` for MQTT devices: set commands through the site broker, confirmed by state reports.

A write publishes the profile's set command (``{"brightness": 128}`` on ``<device topic>/set``)
QoS 1 on the site source's connection and returns once the broker acknowledged it. The read-back
is the MQTT equivalent of a fresh poll: the device's state reports that arrive after the command,
waited for until one confirms the write or ``confirm_timeout_s`` passes (then the last report is
returned, so the mismatch names what the device says). Reports arriving between the publish and
the wait are kept. The ``ActionRunner`` serialises writes per device, retries and audits.

A device an MQTT group found (``mqtt_groups``) is commanded exactly like a configured one once the
group has seen it report: its device topic is its state topic less the profile's state suffix
(``check_device_profiles`` makes sure a commandable group's pattern ends in it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from device_profiles.errors import EncodeError
from device_profiles.mqtt_payload import encode_mqtt_command
from device_profiles.schema import MqttMapping, Profile
from edge_agent.actions import WriteAttempt
from edge_agent.settings import DeviceConfig
from edge_agent.sources.base import Reading
from edge_agent.sources.mqtt_site import GroupMember, MqttSiteSource, SiteBrokerDown


@dataclass(frozen=True)
class MqttTarget:
    """Where one device takes commands and how long its confirmation may take."""

    command_topic: str
    mapping: MqttMapping
    confirm_timeout_s: float


def mqtt_targets(devices: list[tuple[DeviceConfig, Profile]]) -> dict[str, MqttTarget]:
    """The commandable MQTT devices (a profile with ``mqtt.command``), by device id."""
    targets = {}
    for device, profile in devices:
        mapping = profile.mqtt
        if device.mqtt is None or mapping is None or mapping.command is None:
            continue
        timeout = device.mqtt.confirm_timeout_s or mapping.command.confirm_timeout_s
        targets[device.id] = MqttTarget(mapping.command_topic(device.mqtt.topic), mapping, timeout)
    return targets


def group_target(member: GroupMember) -> MqttTarget | None:
    """Where a group's device takes commands (None: its profile takes none)."""
    mapping = member.profile.mqtt
    if mapping is None or mapping.command is None:
        return None
    device_topic = mapping.device_topic(member.state_topic)
    if device_topic is None:
        return None
    timeout = mapping.command.confirm_timeout_s
    return MqttTarget(mapping.command_topic(device_topic), mapping, timeout)


class DeviceProfiles(Mapping[str, Profile]):
    """Each writable device's profile, by id: the configured devices and the ones the site
    source's groups have found so far (a view: a device found later is in it at once)."""

    def __init__(self, configured: Mapping[str, Profile], site: MqttSiteSource | None) -> None:
        self.configured = dict(configured)
        self.site = site

    def __getitem__(self, device: str) -> Profile:
        profile = self.configured.get(device)
        if profile is not None:
            return profile
        member = self.site.member(device) if self.site is not None else None
        if member is None:
            raise KeyError(device)
        return member.profile

    def __iter__(self) -> Iterator[str]:
        yield from self.configured
        if self.site is not None:
            yield from (d for d in self.site.members if d not in self.configured)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def unknown(self, device: str) -> str:
        """Why ``device`` cannot be written: not configured, and no group has found it."""
        detail = f"no device {device!r} on this gateway"
        unfound = self.site.unfound(device) if self.site is not None else None
        if unfound is None:
            return detail
        return f"{detail}: {unfound.why}"


class MqttDeviceIO:
    """Writes MQTT devices through the site broker; reads them back from their state reports."""

    def __init__(self, source: MqttSiteSource, targets: Mapping[str, MqttTarget]) -> None:
        self.source = source
        self.targets = dict(targets)
        self._reports: dict[str, asyncio.Queue[dict[str, float]]] = {}

    def observe(self, reading: Reading) -> None:
        """A state report from the site broker (``MqttSiteSource.on_report``)."""
        queue = self._reports.get(reading.device)
        if queue is not None:
            queue.put_nowait(dict(reading.values))

    def target(self, device: str) -> MqttTarget | None:
        """A configured device's target, or a group device's once its group has found it."""
        target = self.targets.get(device)
        if target is None and (member := self.source.member(device)) is not None:
            target = group_target(member)
            if target is not None:
                self.targets[device] = target
        return target

    async def write_point(self, device: str, point: str, value: float) -> WriteAttempt:
        target = self.target(device)
        if target is None:
            return WriteAttempt(ok=False, detail=f"{device}: not a commandable MQTT device")
        try:
            payload = encode_mqtt_command(target.mapping, {point: value})
        except EncodeError as exc:
            return WriteAttempt(ok=False, detail=f"{device}.{point}: {exc}")
        self._reports[device] = asyncio.Queue()  # reports from now on may confirm it
        try:
            await self.source.publish(target.command_topic, payload)
        except SiteBrokerDown as exc:
            return WriteAttempt(ok=False, detail=f"{device}: {exc}")
        return WriteAttempt(ok=True)

    async def read_back(
        self, device: str, confirms: Callable[[Mapping[str, float]], bool]
    ) -> dict[str, float]:
        target = self.target(device)
        if target is None:
            raise OSError(f"{device}: not a commandable MQTT device")
        queue = self._reports.setdefault(device, asyncio.Queue())
        last: dict[str, float] | None = None
        try:
            async with asyncio.timeout(target.confirm_timeout_s):
                while True:
                    last = await queue.get()
                    if confirms(last):
                        return last
        except TimeoutError:
            if last is None:
                raise OSError(f"no state report within {target.confirm_timeout_s:g} s") from None
            return last
        finally:
            self._reports.pop(device, None)
