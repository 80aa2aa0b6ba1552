"""The agent: wires sources -> aggregator -> outbox -> uplink and shuts them down in reverse.

Shutdown (``request_stop``): sources stop first, then the window and heartbeat loops. Windows
that have closed are enqueued; open (partial) windows are dropped, never sent. The uplink then
drains the outbox for up to ``stop_grace_s``, publishes ``State(online=False)`` retained and
disconnects; rows it could not send stay in the outbox for the next run. The status page, when
configured, stops accepting requests as soon as the stop begins.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from campus_config import ConfigError
from campus_forward.outbox import Outbox, OutboxWriteError
from campus_forward.packing import pack_windows
from campus_forward.uplink import HubUplink
from campus_protocol.messages import Body, CommandResult, Health, MessageKind, OutboxHealth
from device_profiles.schema import Profile
from edge_agent.actions import ActionRunner, DeviceIO
from edge_agent.aggregate import WindowAggregator, device_meta
from edge_agent.commands import CommandHandler
from edge_agent.device_io import ModbusDeviceIO, RoutedDeviceIO
from edge_agent.health import WINDOWS_ENQUEUED
from edge_agent.local_actions import LocalActions
from edge_agent.mqtt_device_io import DeviceProfiles, MqttDeviceIO, mqtt_targets
from edge_agent.rules import Firing, RuleConfigError, RuleEngine, RuleStore, load_calendar
from edge_agent.rules.setup import check_rules, rule_devices
from edge_agent.settings import AgentSettings, check_device_profiles
from edge_agent.sources.base import DeviceState, Reading, Source
from edge_agent.sources.modbus import ModbusSource, build_coordinators
from edge_agent.sources.mqtt_site import MqttSiteSource, NewDevice
from edge_agent.status_http import StatusServer
from edge_agent.status_view import DeviceStatusView, StatusSnapshot

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"
RULES_FILE = "rules.sqlite3"
RULES_TICK_S = 1.0
SERIES_SAVE_S = 10.0
MAX_HEALTH_DEVICES = 1024

try:
    AGENT_VERSION = version("campus-iot")
except PackageNotFoundError:  # running from a source tree that was never installed
    AGENT_VERSION = "0.0.0+local"


def check_profiles(settings: AgentSettings, profiles: Mapping[str, Profile]) -> None:
    """Raise ``ConfigError`` naming each device whose profile is unknown or of another protocol."""
    errors = check_device_profiles(settings, profiles)
    errors += check_rules(settings, profiles) if not errors else []
    if errors:
        raise ConfigError("\n".join(errors))


def build_sources(
    settings: AgentSettings,
    profiles: Mapping[str, Profile],
    *,
    on_new_device: NewDevice | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[ModbusSource | None, MqttSiteSource | None]:
    """One Modbus source (a coordinator per device) and one site MQTT source, when configured;
    ``on_new_device`` hears of each device an MQTT group finds."""
    coordinators = build_coordinators(
        [(d, profiles[d.profile]) for d in settings.devices if d.modbus is not None], clock=clock
    )
    mqtt_devices = [(d, profiles[d.profile]) for d in settings.devices if d.mqtt is not None]
    groups = [(g, profiles[g.profile]) for g in settings.mqtt_groups]
    mqtt = None
    if mqtt_devices or groups:
        mqtt = MqttSiteSource(
            settings.site_broker,
            mqtt_devices,
            groups=groups,
            on_new_device=on_new_device,
            clock=clock,
        )
    return ModbusSource(coordinators) if coordinators else None, mqtt


def device_io(
    settings: AgentSettings,
    profiles: Mapping[str, Profile],
    modbus: ModbusSource | None,
    mqtt: MqttSiteSource | None,
) -> RoutedDeviceIO:
    """Writes to each device by its protocol: Modbus through its coordinator, MQTT as set
    commands on the site source's connection (for the devices its groups find too), confirmed by
    the state reports it hears."""
    routes: dict[str, DeviceIO] = {}
    if modbus is not None:
        modbus_io = ModbusDeviceIO({c.device_id: c for c in modbus.coordinators})
        routes.update(dict.fromkeys(modbus_io.coordinators, modbus_io))
    if mqtt is None:
        return RoutedDeviceIO(routes)
    devices = [(d, profiles[d.profile]) for d in settings.devices if d.mqtt is not None]
    mqtt_io = MqttDeviceIO(mqtt, mqtt_targets(devices))
    mqtt.on_report = mqtt_io.observe
    routes.update(dict.fromkeys(mqtt_io.targets, mqtt_io))
    return RoutedDeviceIO(routes, fallback=mqtt_io)


def action_runner(
    settings: AgentSettings,
    profiles: Mapping[str, Profile],
    modbus: ModbusSource | None,
    mqtt: MqttSiteSource | None,
    store: RuleStore,
    *,
    clock: Callable[[], float] = time.time,
) -> ActionRunner:
    """The runner of every write on this gateway's devices, configured or found by a group."""
    writable = DeviceProfiles({d.id: profiles[d.profile] for d in settings.devices}, mqtt)
    return ActionRunner(
        io=device_io(settings, profiles, modbus, mqtt),
        profiles=writable,
        store=store,
        unknown=writable.unknown,
        manual_hold_s=settings.manual_hold_s,
        clock=clock,
    )


class Agent:
    """One edge agent. ``await run()`` until ``request_stop()``."""

    def __init__(
        self,
        settings: AgentSettings,
        profiles: Mapping[str, Profile],
        *,
        stop_grace_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_profiles(settings, profiles)
        self.settings = settings
        self.node = settings.gateway.id
        self.stop_grace_s = stop_grace_s
        self._clock = clock
        modbus, mqtt = build_sources(
            settings, profiles, on_new_device=self._register_device, clock=clock
        )
        self.sources: list[Source] = [s for s in (modbus, mqtt) if s is not None]
        self.units = {
            d.id: {p: profiles[d.profile].unit_of(p) for p in profiles[d.profile].point_names}
            for d in settings.devices
        }
        self.latest: dict[str, Reading] = {}  # each device's newest reading, for the status page
        self.aggregator = WindowAggregator(
            settings.window_s,
            {d.id: device_meta(d.profile, d.room, profiles[d.profile]) for d in settings.devices},
        )
        self.outbox = Outbox.open_or_replace(
            settings.data_dir / OUTBOX_FILE,
            budget_bytes=settings.outbox.budget_bytes,
            merge_window_s=settings.outbox.merge_window_s,
        )
        self.rule_store = RuleStore(settings.data_dir / RULES_FILE)
        try:
            self.rules = RuleEngine(
                rule_devices(settings, profiles),
                calendar=load_calendar(settings.calendar_file),
                overrides=settings.rules,
                store=self.rule_store,
                clock=clock,
            )
        except RuleConfigError as exc:
            self.rule_store.close()
            self.outbox.close()
            raise ConfigError(str(exc)) from None
        self.events_enqueued = 0
        self.actions = action_runner(settings, profiles, modbus, mqtt, self.rule_store, clock=clock)
        self.local_actions = LocalActions(settings.local_actions, self.actions, self._answer)
        self.commands = CommandHandler(
            self.node, self.actions, self.rule_store, self._answer, clock=clock
        )
        self.uplink = HubUplink(
            self.node,
            settings.hub,
            self.outbox,
            max_in_flight=settings.outbox.max_in_flight,
            live_share=settings.outbox.live_share,
        )
        self.uplink.on_downlink = self.commands.on_downlink
        self.windows_enqueued = 0
        self.heartbeats_enqueued = 0
        self.started_at = clock()
        self.ready = asyncio.Event()  # set once every stage of ``run()`` is up
        self.status_port_bound: int | None = None  # where the status page listens, once bound
        self._status_server = (
            None
            if settings.status_port is None
            else StatusServer(
                self.status,
                settings.gateway.site,
                host=settings.status_host,
                port=settings.status_port,
            )
        )
        self._stop = asyncio.Event()

    @property
    def messages_published(self) -> dict[str, int]:
        """Messages acknowledged by the hub broker, by kind (outbox rows only, not state)."""
        return dict(self.uplink.published)

    @property
    def status_url(self) -> str | None:
        """The status page address, once it is listening."""
        if self._status_server is None or self.status_port_bound is None:
            return None
        return self._status_server.url

    def device_states(self) -> list[DeviceState]:
        return [state for source in self.sources for state in source.device_states()]

    def request_stop(self) -> None:
        """Begin a clean shutdown; ``run()`` returns when it is done."""
        self._stop.set()

    async def run(self) -> None:
        """Run every stage under one TaskGroup until ``request_stop()``."""
        self.started_at = self._clock()
        log.info("agent %s starting with %d devices", self.node, len(self.settings.devices))
        status_server = self._bind_status_page()
        try:
            async with asyncio.TaskGroup() as tg:
                finishing = {tg.create_task(self.uplink.run(), name="uplink")}
                if status_server is not None:
                    finishing.add(tg.create_task(status_server.serve(), name="status-page"))
                for source in self.sources:
                    await source.start(self._on_reading)
                loops = [
                    tg.create_task(self._window_loop(), name="windows"),
                    tg.create_task(self._heartbeat_loop(), name="heartbeat"),
                    tg.create_task(self._rules_loop(), name="rules"),
                ]
                # Everything built so far (coordinators, clients, profiles) lives as long as the
                # agent: kept out of the collector's full passes, which otherwise rescan it for
                # every few thousand short-lived window objects (a third of the CPU at 2,000
                # devices, bench/modbus_fleet.py).
                gc.freeze()
                self.ready.set()
                await self._stop.wait()
                log.info("agent %s stopping", self.node)
                if status_server is not None:
                    status_server.stop()
                await self._stop_sources()
                for task in loops:
                    task.cancel()
                await self.local_actions.wait_idle()
                await self.commands.wait_idle()
                self._enqueue_closed_windows(self._clock())
                self.uplink.close(self.stop_grace_s)
                _, still_running = await asyncio.wait(finishing, timeout=self.stop_grace_s + 5)
                for task in still_running:
                    task.cancel()
        finally:
            await self._stop_sources()
            if status_server is not None:
                status_server.close()
            self.rules.save()
            self.rule_store.close()
            self.outbox.close()
        log.info("agent %s stopped", self.node)

    def status(self) -> StatusSnapshot:
        """The status-page view of this agent."""
        now = self._clock()
        devices = []
        for state in self.device_states():
            latest = self.latest.get(state.device)
            values = latest.values if latest is not None else {}
            units = self.units.get(state.device, {})
            devices.append(DeviceStatusView.of(state, now, values=values, units=units))
        return StatusSnapshot(
            gateway=self.node,
            started_at=self.started_at,
            taken_at=now,
            devices=devices,
            uplink_connected=self.uplink.connected,
            uplink_last_error=str(self.uplink.last_error or ""),
            uplink_waiting_for_hub=self.uplink.waiting_for_hub,
            outbox_depth=self.outbox.depth(),
            outbox=self.outbox.budget_report(),
            windows_enqueued=self.windows_enqueued,
            messages_published=self.messages_published,
            messages_discarded=dict(self.uplink.discarded),
        )

    def _bind_status_page(self) -> StatusServer | None:
        """Listen for the status page; a taken address is logged and the agent runs without it."""
        server = self._status_server
        if server is None:
            return None
        try:
            self.status_port_bound = server.bind()
        except OSError as exc:
            log.error(
                "status page: cannot listen on %s:%s (%s); running without it",
                server.host,
                server.port,
                exc,
            )
            return None
        log.info("status page on %s", server.url)
        return server

    def _register_device(self, device: str, profile: Profile, room: str) -> None:
        """A device an MQTT group found: its windows carry its profile and room."""
        self.aggregator.devices[device] = device_meta(profile.id, room, profile)

    def _on_reading(self, reading: Reading) -> None:
        self.latest[reading.device] = reading
        self.aggregator.add(reading)
        self._on_firings(self.rules.on_reading(reading))

    def _on_firings(self, firings: list[Firing]) -> None:
        """Queue each rule event (the outbox's event lane goes out before telemetry)."""
        for firing in firings:
            log.warning(
                "%s %s %s on %s (value %g, count %d)",
                firing.event.severity.value,
                firing.event.rule,
                "flapping" if firing.event.flapping else firing.event.state.value,
                firing.event.device,
                firing.event.value,
                firing.event.count,
            )
            if self._enqueue(MessageKind.EVENT, firing.event):
                self.events_enqueued += 1
            self.local_actions.on_firing(firing)

    def _answer(self, result: CommandResult) -> bool:
        """Queue a command answer or a local action's audit record for the hub."""
        return self._enqueue(MessageKind.CMDRES, result)

    async def _rules_loop(self) -> None:
        """What time alone changes: delays, offline and stale devices, the calendar."""
        saved_at = self._clock()
        while True:
            await asyncio.sleep(RULES_TICK_S)
            now = self._clock()
            states = {s.device: s.available for s in self.device_states()}
            self._on_firings(self.rules.tick(states, now))
            if now - saved_at >= SERIES_SAVE_S:
                self.rules.save()
                saved_at = now

    async def _stop_sources(self) -> None:
        for source in reversed(self.sources):
            await source.stop()

    async def _window_loop(self) -> None:
        window = self.settings.window_s
        while True:
            now = self._clock()
            await asyncio.sleep((math.floor(now / window) + 1) * window - now + 0.01)
            self._enqueue_closed_windows(self._clock())

    async def _heartbeat_loop(self) -> None:
        while True:
            self._enqueue(MessageKind.HEALTH, self._health())
            self.heartbeats_enqueued += 1
            await asyncio.sleep(self.settings.heartbeat_s)

    def _enqueue_closed_windows(self, now: float) -> None:
        windows = self.aggregator.push(now)
        bodies = pack_windows(windows)
        if self._enqueue_many([(MessageKind.TELEMETRY, body) for body in bodies]):
            self.windows_enqueued += len(windows)
            WINDOWS_ENQUEUED.inc(len(windows))

    def _enqueue(self, kind: MessageKind, body: Body) -> bool:
        return self._enqueue_many([(kind, body)])

    def _enqueue_many(self, messages: list[tuple[MessageKind, Body]]) -> bool:
        """Queue ``messages`` in one transaction; a refused write is counted, never raised."""
        if not messages:
            return False
        try:
            self.outbox.append_many(messages)
        except OutboxWriteError as exc:  # logged by the outbox once per change of disk state
            for kind, _ in messages:
                self.outbox.count_unstored(kind, exc.reason)
            return False
        self.uplink.wake()
        return True

    def _health(self) -> Health:
        now = self._clock()
        return Health(
            site=self.settings.gateway.site,
            agent_version=AGENT_VERSION,
            started_at=datetime.fromtimestamp(self.started_at, UTC),
            uptime_s=max(0.0, now - self.started_at),
            heartbeat_interval_s=self.settings.heartbeat_s,
            outbox_depth=self.outbox.depth(),
            devices=[s.to_health() for s in self.device_states()[:MAX_HEALTH_DEVICES]],
            outbox=OutboxHealth(**asdict(self.outbox.budget_report())),
        )
