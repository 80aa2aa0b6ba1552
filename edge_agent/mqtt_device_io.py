"""``DeviceIO`` for MQTT devices: set commands through the site broker, confirmed by state reports.

A write publishes the profile's set command (``{"brightness": 128}`` on ``<device topic>/set``)
QoS 1 on the site source's connection and returns once the broker acknowledged it. The read-back
is the MQTT equivalent of a fresh poll: the device's state reports that arrive after the command,
waited for until one confirms the write or ``confirm_timeout_s`` passes (then the last report is
returned, so the mismatch names what the device says). Reports arriving between the publish and
the wait are kept. The ``ActionRunner`` serialises writes per device, retries and audits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from device_profiles.errors import EncodeError
from device_profiles.mqtt_payload import encode_mqtt_command
from device_profiles.schema import MqttMapping, Profile
from edge_agent.actions import WriteAttempt
from edge_agent.settings import DeviceConfig
from edge_agent.sources.base import Reading
from edge_agent.sources.mqtt_site import MqttSiteSource, SiteBrokerDown


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

    async def write_point(self, device: str, point: str, value: float) -> WriteAttempt:
        target = self.targets.get(device)
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
        target = self.targets.get(device)
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
