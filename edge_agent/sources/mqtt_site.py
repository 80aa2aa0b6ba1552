"""MQTT site source: one aiomqtt subscriber on the school's broker for every MQTT device.

A device publishes JSON on ``<device mqtt.topic>/<profile mqtt.topic_suffix>``; payloads are
decoded with ``device_profiles.mqtt_payload``. A device group (``mqtt_groups``) serves many
devices of one profile through a topic pattern such as ``sensors/{device}/data``: each device is
added the first time it publishes (``on_new_device`` tells the agent; ``member`` finds it for
commands), up to the group's ``max_devices``. Subscriptions are QoS 1. A malformed payload, a
topic level that is not a valid device id, an id already taken (by a configured device or on
another topic) and a device past a group's limit are counted by reason and skipped, never fatal. A
device is offline after ``3 x expected_interval_s`` without a good message (checked every second;
the change is logged once each way).

The same connection carries set commands to devices (``publish``, QoS 1), and ``on_report`` hears
every decoded state report, which is how a command is confirmed (``MqttDeviceIO``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt

from campus_mqtt import Backoff, BrokerEndpoint, LinkState, make_client, run_reconnecting
from device_profiles.errors import PayloadError
from device_profiles.mqtt_payload import decode_mqtt_payload
from device_profiles.schema import MqttMapping, Profile
from edge_agent.health import SOURCE_ERRORS, SOURCE_INVALID_VALUES, SOURCE_READINGS
from edge_agent.settings import DeviceConfig, MqttDeviceGroup, SiteBrokerSettings
from edge_agent.sources.base import DeviceState, Emit, Reading, cancel_and_wait

log = logging.getLogger(__name__)

PROTOCOL = "mqtt"
SILENT_INTERVALS = 3


class DeviceSilent(Exception):
    """No good message from an MQTT device for ``3 x expected_interval_s``."""


class SiteBrokerDown(ConnectionError):
    """A publish to the site broker could not be made or was not acknowledged."""


@dataclass
class _Subscription:
    topic: str
    mapping: MqttMapping
    state: DeviceState


@dataclass
class _Group:
    config: MqttDeviceGroup
    profile: Profile
    levels: list[str]
    members: int = 0

    def could_hold(self, device: str) -> bool:
        """Whether ``device`` is an id this group could find (its prefix, then a level)."""
        prefix = self.config.id_prefix
        return device.startswith(prefix) and len(device) > len(prefix)


@dataclass(frozen=True)
class GroupMember:
    """A device a group found: where it reports and its group's profile."""

    state_topic: str
    profile: Profile


@dataclass(frozen=True)
class Unfound:
    """Why a group has not found a device it could hold, and how soon it would if it reports."""

    why: str
    expect_within_s: float  # the group's report interval; 0: it never will (the group is full)


#: a device found through a group: (device id, profile, room)
NewDevice = Callable[[str, Profile, str], None]
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class MqttSiteSource:
    """Subscribes to the site broker and turns device payloads into readings."""

    protocol = PROTOCOL

    def __init__(
        self,
        broker: SiteBrokerSettings,
        devices: list[tuple[DeviceConfig, Profile]],
        *,
        groups: Sequence[tuple[MqttDeviceGroup, Profile]] = (),
        on_new_device: NewDevice | None = None,
        reconnect_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.backoff = Backoff(min_s=reconnect_s / 4, max_s=reconnect_s * 4)
        self.link = LinkState(
            f"site broker {broker.host}:{broker.port}",
            on_failure=lambda _error_type: SOURCE_ERRORS.labels(PROTOCOL, "connection").inc(),
        )
        self.malformed = 0
        self._clock = clock
        self._started_at = clock()
        self._by_topic: dict[str, _Subscription] = {}
        for device, profile in devices:
            if device.mqtt is None or profile.mqtt is None:
                raise ValueError(f"{device.id}: MqttSiteSource needs an mqtt device and profile")
            topic = profile.mqtt.state_topic(device.mqtt.topic)
            state = DeviceState(
                device=device.id,
                profile=profile.id,
                room=device.room,
                room_name=device.room_name,
                protocol=PROTOCOL,
                _clock=clock,
            )
            self._by_topic[topic] = _Subscription(topic, profile.mqtt, state)
        self._device_topics = list(self._by_topic)  # configured; group members come later
        self._configured = {device.id for device, _ in devices}
        self._groups = [_Group(g, p, g.topic.split("/")) for g, p in groups]
        self._members: dict[str, GroupMember] = {}  # by device id, as groups find them
        self._on_new_device = on_new_device
        self.on_report: Callable[[Reading], None] | None = None  # every decoded state report
        self._client: aiomqtt.Client | None = None  # while connected
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        return self.link.connected

    @property
    def topics(self) -> list[str]:
        """What the source subscribes to: device topics and group patterns."""
        return sorted({*self._device_topics, *(g.config.subscription for g in self._groups)})

    async def start(self, emit: Emit) -> None:
        self._started_at = self._clock()
        self._tasks = [
            asyncio.create_task(self._subscribe_loop(emit), name="mqtt_site:subscribe"),
            asyncio.create_task(self._watchdog_loop(), name="mqtt_site:watchdog"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    def device_states(self) -> list[DeviceState]:
        return [s.state for s in self._by_topic.values()]

    @property
    def members(self) -> list[str]:
        """The devices the groups have found, in the order they were found."""
        return list(self._members)

    def member(self, device: str) -> GroupMember | None:
        """The group device ``device``, once a group has found it."""
        return self._members.get(device)

    def unfound(self, device: str) -> Unfound | None:
        """Why no group has found ``device`` yet (None: no group could hold such an id)."""
        for group in self._groups:
            if not group.could_hold(device):
                continue
            topic, limit = group.config.topic, group.config.max_devices
            if group.members >= limit:
                return Unfound(f"MQTT group {topic!r} is full (max_devices {limit})", 0.0)
            assert group.profile.mqtt is not None
            return Unfound(
                f"not seen yet on MQTT group {topic!r}, whose devices take commands once"
                " they have reported",
                group.profile.mqtt.expected_interval_s,
            )
        return None

    def handle(self, topic: str, payload: bytes, emit: Emit) -> None:
        """Decode one message; unknown topics are ignored, bad payloads counted."""
        sub = self._by_topic.get(topic) or self._join_group(topic)
        if sub is None:
            return
        try:
            decoded = decode_mqtt_payload(sub.mapping, payload)
        except PayloadError as exc:
            self.malformed += 1
            SOURCE_ERRORS.labels(PROTOCOL, exc.reason).inc()
            sub.state.last_exception = exc
            return
        now = self._clock()
        if decoded.invalid:
            sub.state.invalid_values += len(decoded.invalid)
            SOURCE_INVALID_VALUES.labels(PROTOCOL).inc(len(decoded.invalid))
        state = sub.state
        if state.available is False:
            log.info("%s: messages again after %.0f s", state.device, state.failing_for_s(now) or 0)
        state.available = True
        state.last_ok_at = now
        state.failing_since = None
        state.consecutive_failures = 0
        state.last_exception = None
        SOURCE_READINGS.labels(PROTOCOL).inc()
        reading = Reading(device=state.device, values=decoded.values, at=now)
        emit(reading)
        if self.on_report is not None:
            self.on_report(reading)

    async def publish(self, topic: str, payload: bytes, *, timeout_s: float = 5.0) -> None:
        """Publish ``payload`` QoS 1 on the site broker; return once the broker acknowledged it.
        Raises ``SiteBrokerDown`` when not connected or not acknowledged in ``timeout_s``."""
        client = self._client
        where = f"site broker {self.broker.host}:{self.broker.port}"
        if client is None:
            raise SiteBrokerDown(f"{where} not connected")
        try:
            await client.publish(topic, payload, qos=1, timeout=timeout_s)
        except aiomqtt.MqttError as exc:
            raise SiteBrokerDown(f"{where}: publish not acknowledged ({exc})") from exc

    def _join_group(self, topic: str) -> _Subscription | None:
        """The subscription of a device first seen on a group's pattern, or None."""
        levels = topic.split("/")
        for group in self._groups:
            found = _match(group.levels, levels)
            if found is None:
                continue
            device = group.config.id_prefix + found.get("{device}", "")
            room = found.get("{room}") or group.config.room or ""
            if not (_DEVICE_ID.match(device) and _DEVICE_ID.match(room)):
                SOURCE_ERRORS.labels(PROTOCOL, "invalid_device_id").inc()
                return None
            if group.members >= group.config.max_devices:
                SOURCE_ERRORS.labels(PROTOCOL, "too_many_devices").inc()
                return None
            assert group.profile.mqtt is not None
            state = DeviceState(
                device=device,
                profile=group.profile.id,
                room=room,
                protocol=PROTOCOL,
                _clock=self._clock,
            )
            if device in self._members or device in self._configured:  # the first keeps it
                SOURCE_ERRORS.labels(PROTOCOL, "duplicate_device_id").inc()
                return None
            sub = self._by_topic[topic] = _Subscription(topic, group.profile.mqtt, state)
            self._members[device] = GroupMember(topic, group.profile)
            group.members += 1
            if self._on_new_device is not None:
                self._on_new_device(device, group.profile, room)
            log.info("%s: new %s device on %s", device, group.profile.id, topic)
            return sub
        return None

    def check_silence(self) -> None:
        """Mark devices offline after three expected intervals without a good message."""
        now = self._clock()
        for sub in self._by_topic.values():
            state = sub.state
            limit = SILENT_INTERVALS * sub.mapping.expected_interval_s
            since = state.last_ok_at if state.last_ok_at is not None else self._started_at
            if now - since <= limit or state.available is False:
                continue
            state.available = False
            state.failing_since = now
            state.consecutive_failures += 1
            state.last_exception = DeviceSilent(
                f"{state.device}: no message on {sub.topic} for {limit:g} s"
            )
            SOURCE_ERRORS.labels(PROTOCOL, "silent").inc()
            log.error("%s", state.last_exception)

    async def _subscribe_loop(self, emit: Emit) -> None:
        async def session() -> bool:
            endpoint = BrokerEndpoint(
                host=self.broker.host,
                port=self.broker.port,
                username=self.broker.username,
                password=self.broker.password.get_secret_value() if self.broker.password else None,
            )
            async with make_client(endpoint, identifier=None) as client:
                for topic in self.topics:
                    await client.subscribe(topic, qos=1)
                self.link.up()
                self._client = client
                try:
                    async for message in client.messages:
                        payload = message.payload
                        data = payload if isinstance(payload, bytes) else str(payload).encode()
                        try:
                            self.handle(str(message.topic), data, emit)
                        except Exception:  # a bug of ours must not end the subscription
                            log.exception("site message on %s not handled", message.topic)
                            SOURCE_ERRORS.labels(PROTOCOL, "internal").inc()
                finally:
                    self._client = None
            return False

        await run_reconnecting(session, link=self.link, backoff=self.backoff)

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.check_silence()


def _match(pattern: list[str], levels: list[str]) -> dict[str, str] | None:
    """The placeholder values when ``levels`` fits ``pattern`` (``+`` matches any level)."""
    if len(pattern) != len(levels):
        return None
    found: dict[str, str] = {}
    for want, level in zip(pattern, levels, strict=True):
        if want in ("{device}", "{room}"):
            found[want] = level
        elif want != "+" and want != level:
            return None
    return found
