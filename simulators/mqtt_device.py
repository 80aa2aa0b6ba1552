"""An MQTT device (e.g. a recording-room controller) publishing its profile's JSON on a site broker.

It publishes ``encode_mqtt_payload(profile.mqtt, values)`` to its state topic
(``<topic>/<topic_suffix>``) every ``interval_s`` wall seconds at QoS 1, and reconnects when the
broker goes away through ``campus_mqtt.run_reconnecting`` (the project's one back-off, around
``reconnect_s``). A profile with ``mqtt.command`` also takes set
commands on ``<topic>/<command suffix>`` (Zigbee2MQTT style: ``{"state": "ON", "brightness":
128}``), applies the writable points they name and publishes its new state at once, as
Zigbee2MQTT does after a set. Faults: ``offline`` publishes nothing and takes no commands,
``exception`` reports an error state, ``stuck`` repeats frozen values, ``garbage`` sends random
non-JSON bytes, ``ignore_writes`` takes commands without applying them, ``wrong_value`` applies
them wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiomqtt
import numpy as np

from campus_mqtt import Backoff, LinkState, run_reconnecting
from device_profiles.errors import PayloadError
from device_profiles.mqtt_payload import decode_mqtt_command, encode_mqtt_payload
from device_profiles.schema import MqttMapping, MqttValueType
from simulators.devices import SimulatedDevice
from simulators.faults import FaultKind
from simulators.signals import SimClock

log = logging.getLogger(__name__)


class MqttDevicePublisher:
    """Publishes one simulated device's status; counts what the broker acknowledged."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        topic: str,
        host: str,
        port: int,
        clock: SimClock,
        interval_s: float | None = None,
        reconnect_s: float = 1.0,
    ) -> None:
        if device.profile.mqtt is None:
            raise ValueError(f"{device.device_id}: profile {device.profile.id} is not MQTT")
        self.device = device
        self.mapping: MqttMapping = device.profile.mqtt
        self.base_topic = topic
        self.topic = self.mapping.state_topic(topic)
        self.host = host
        self.port = port
        self.clock = clock
        self.interval_s = interval_s if interval_s is not None else self.mapping.expected_interval_s
        self.link = LinkState(name=f"simulated device {self.topic}")
        self.backoff = Backoff(
            min_s=reconnect_s / 4, max_s=reconnect_s * 4, rng=random.Random(device.seed)
        )
        self.command_topic = (
            self.mapping.command_topic(topic) if self.mapping.command is not None else None
        )
        self.published = 0  # payloads acknowledged by the broker (QoS 1)
        self.commands = 0  # set commands received (applied or not)
        self.malformed_commands = 0
        self.last_payload: bytes | None = None
        self._rng = np.random.default_rng(device.seed)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def payload(self) -> bytes | None:
        """The next payload, or None while the device is ``offline``."""
        fault = self.device.fault
        if fault is not None and fault.kind is FaultKind.OFFLINE:
            return None
        if fault is not None and fault.kind is FaultKind.GARBAGE:
            return bytes(self._rng.integers(0, 256, 24, dtype=np.uint8))
        values = self.device.read(self.clock.now())
        if fault is not None and fault.kind is FaultKind.EXCEPTION:
            values = self._error_state(values)
        return encode_mqtt_payload(self.mapping, values)

    def _error_state(self, values: dict[str, float]) -> dict[str, float]:
        """Every enum point set to its ``error`` code where it has one."""
        out = dict(values)
        for point in self.mapping.points:
            if point.type is MqttValueType.ENUM and point.enum and "error" in point.enum:
                out[point.name] = point.enum["error"]
        return out

    @property
    def connects(self) -> int:
        """Connections made to the broker so far."""
        return self.link.connects

    async def run(self) -> None:
        """Publish until :meth:`stop`, reconnecting on broker loss."""
        await run_reconnecting(
            self._session, link=self.link, backoff=self.backoff, stopping=self._stopping
        )

    async def _session(self) -> bool:
        """One connection: publish and take commands until stopped (True) or the broker goes."""
        async with aiomqtt.Client(self.host, self.port) as client:
            self.link.up()
            if self.command_topic is not None:
                await client.subscribe(self.command_topic, qos=1)
            commands = asyncio.create_task(self._take_commands(client))
            try:
                while not self._stopping.is_set():
                    await self._publish_state(client)
                    await self._pause(self.interval_s)
            finally:
                commands.cancel()
                await asyncio.wait({commands})
        return True

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        payload = self.payload()
        if payload is not None:
            await client.publish(self.topic, payload, qos=1, retain=self.mapping.retain)
            self.published += 1
            self.last_payload = payload

    async def _take_commands(self, client: aiomqtt.Client) -> None:
        """Apply each set command and publish the state it leaves (none while ``offline``)."""
        async for message in client.messages:
            if str(message.topic) != self.command_topic:
                continue
            self.commands += 1
            fault = self.device.fault
            if fault is not None and fault.kind is FaultKind.OFFLINE:
                continue
            payload = message.payload
            try:
                values = decode_mqtt_command(
                    self.mapping, payload if isinstance(payload, bytes) else str(payload).encode()
                )
            except PayloadError:
                self.malformed_commands += 1
                continue
            now = self.clock.now()
            for point, value in values.items():
                self.device.write(point, value, now)
            await self._publish_state(client)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"mqtt-device {self.topic}")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Leave the broker cleanly (cancelling aiomqtt mid-handshake can wedge it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            log.warning("%s: publisher did not stop within %.1f s; cancelling", self.topic, grace_s)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
