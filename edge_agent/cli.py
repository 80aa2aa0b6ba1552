"""``campus agent``: run, validate, once, write, sample-config, outbox stats."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from campus_config import ConfigError
from campus_config.yaml_locations import with_positions
from campus_forward.outbox import Outbox
from device_profiles.loader import ProfileError, load_profiles, profile_files
from device_profiles.schema import Profile
from edge_agent.app import OUTBOX_FILE, Agent, build_sources, check_profiles
from edge_agent.settings import AgentSettings, load_agent_settings, unknown_profiles_in
from edge_agent.sources.base import Reading
from edge_agent.sources.modbus import ModbusSourceError
from edge_agent.technician import technician_write

app = typer.Typer(help="The campus edge agent (one per school gateway).", no_args_is_help=True)
outbox_app = typer.Typer(help="Inspect the store-and-forward outbox.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="agent.yaml (see `campus agent sample-config`).")
]
ProfilesOption = Annotated[
    Path | None,
    typer.Option(
        "--profiles", help="Extra directory of profile YAML files (bundled ones load too)."
    ),
]

SAMPLE_CONFIG = """\
# campus edge agent configuration (agent.yaml).
# Precedence: defaults < this file < CAMPUS_AGENT_* environment (`__` nests, e.g.
# CAMPUS_AGENT_HUB__PASSWORD) < command-line flags.
# Check it with `campus agent validate -c agent.yaml`.

gateway:
  id: gw-demo-school-1          # node id: lowercase, digits, - and _; also the hub broker username
  site:                          # where this gateway sits: city -> district -> school
    city_id: city-1
    city_name: Demo City
    district_id: district-1
    district_name: Demo District
    school_id: school-1
    school_name: Demo Primary School

hub:                             # the hub broker this gateway forwards to
  host: 127.0.0.1
  port: 1883
  # username: defaults to gateway.id, and must equal it (the broker ACL keys on it)
  password: change-me            # refused outside development; prefer CAMPUS_AGENT_HUB__PASSWORD
  # tls:
  #   ca_file: /etc/campus/ca.pem
  #   cert_file: /etc/campus/gw.pem   # optional client certificate
  #   key_file: /etc/campus/gw.key
  # keepalive_s: 30              # 5..3600

site_broker:                     # the school's local broker that MQTT devices publish to
  host: 127.0.0.1
  port: 1883
  # username: null
  # password: null

# data_dir: ./var/agent          # the outbox (SQLite WAL) lives here
# outbox:
#   budget_bytes: 1073741824     # disk budget (>= 1 MiB); over it, the oldest telemetry is merged,
#                                # then dropped (events never): see campus_forward/outbox.py
#   merge_window_s: 900          # merged telemetry: one window per device per this many seconds
#   live_share: 0.25             # share of each uplink batch for the newest telemetry (0..1)
#   max_in_flight: 64            # messages awaiting the hub broker's PUBACK at once
# window_s: 10                   # telemetry aggregation window, wall-clock aligned (0 < s <= 3600)
# heartbeat_s: 10                # health heartbeat interval
# status_port: null              # HTTP status page; 0 = any free port
# status_host: 127.0.0.1         # its listen address (0.0.0.0 to reach it from the LAN)
# development: false             # true allows placeholder passwords

devices:
  - id: room-101-lights          # unique per gateway
    profile: arlight_dali_logic_lite   # a profile id from device_profiles/
    room: room-101
    room_name: Classroom 101
    modbus:
      host: 192.168.10.21
      port: 502
      # unit_id: 1               # default: the profile's default_unit_id
      # poll_interval_s: 5       # default: the profile's poll_interval_s
      # timeout_s: 1             # default: the profile's timeout_s
  - id: room-101-air
    profile: sensecap_s_co2_03
    room: room-101
    modbus: {host: 192.168.10.22}
  - id: lab-3-gas
    profile: honeywell_midas_gas
    room: lab-3
    room_name: Chemistry lab 3
    modbus: {host: 192.168.10.31}
  - id: rec-room-1
    profile: recording_room_controller
    room: rec-1
    mqtt:
      topic: school/rec-1/controller   # the profile adds /status
  - id: lab-3-relay
    profile: eletechsup_8ch_relay      # relay 1: the lab's ventilation fan
    room: lab-3
    modbus: {host: 192.168.10.32}

# Safety rules run here, on every reading, with the uplink up or down (the profiles' `where: edge`
# rules). Change them per device, room or profile, or add site rules:
# calendar_file: /etc/campus/calendar.yaml   # lessons, holidays, windows; default: the standard
#                                            # timetable (see edge_agent/rules/calendar.py)
# rules:
#   - match: {room: lab-3}
#     rule: {id: gas_level_1, threshold: 20}          # change fields of a profile rule
#   - match: {device: room-101-lights}
#     rule: {id: lights_on_after_hours, enabled: false}
# local_actions:                 # a rule's raise runs a profile action (read back, audited)
#   - id: lab_3_ventilation
#     when: {rule: gas_level_1, room: lab-3}
#     run: {device: lab-3-relay, action: relay_1_on}
#     on_clear: {device: lab-3-relay, action: relay_1_off}
#     retries: 2                 # 0..5 retries when the read-back disagrees
# manual_hold_s: 1800            # a manual write (agent write, hub command) holds actions off
"""


def _load(
    config: Path, profiles_dir: Path | None, **overrides: Any
) -> tuple[AgentSettings, dict[str, Profile]]:
    """Settings (``overrides`` are CLI flags) and profiles, cross-checked; every error line names
    the file and field path."""
    profiles = load_profiles()
    if profiles_dir is not None:
        extra = load_profiles(profile_files(profiles_dir))
        clash = sorted(set(extra) & set(profiles))
        if clash:
            raise ProfileError(f"{profiles_dir}: ids already bundled: {', '.join(clash)}")
        profiles.update(extra)
    try:
        settings = load_agent_settings(config, **overrides)
    except ConfigError as exc:  # report unknown profiles now too, not after this is fixed
        more = [f"{config}: {line}" for line in unknown_profiles_in(_raw_yaml(config), profiles)]
        raise ConfigError("\n".join([str(exc), *with_positions(config, more)])) from None
    try:
        check_profiles(settings, profiles)
    except ConfigError as exc:
        lines = [f"{config}: {line}" for line in str(exc).splitlines()]
        raise ConfigError("\n".join(with_positions(config, lines))) from None
    return settings, profiles


def _raw_yaml(config: Path) -> object:
    try:
        return yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def _load_or_exit(
    config: Path, profiles_dir: Path | None, **overrides: Any
) -> tuple[AgentSettings, dict[str, Profile]]:
    try:
        return _load(config, profiles_dir, **overrides)
    except (ConfigError, ProfileError) as exc:
        for line in str(exc).splitlines():
            errors.print(f"[red]error[/red] {line}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigOption,
    profiles: ProfilesOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    stop_grace_s: Annotated[
        float, typer.Option(help="How long to keep draining the outbox on shutdown.")
    ] = 5.0,
    status_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve the status page on this port (0 = any free port)."
        ),
    ] = None,
) -> None:
    """Run the agent until SIGINT/SIGTERM, then stop cleanly."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {} if status_port is None else {"status_port": status_port}
    settings, loaded = _load_or_exit(config, profiles, **overrides)
    agent = Agent(settings, loaded, stop_grace_s=stop_grace_s)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.request_stop)
        running = asyncio.create_task(agent.run())
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if agent.status_url is not None:
            console.print(f"status page: {agent.status_url}", highlight=False, soft_wrap=True)
        elif settings.status_port is not None and not running.done():
            errors.print("[yellow]warning[/yellow] status page not available (see the log)")
        await running

    asyncio.run(main())


@app.command()
def validate(config: ConfigOption, profiles: ProfilesOption = None) -> None:
    """Load the config and profiles and print a summary, or the errors (exit 2)."""
    settings, loaded = _load_or_exit(config, profiles)
    console.print(
        f"[bold]{config}[/bold]: gateway [cyan]{settings.gateway.id}[/cyan] "
        f"({settings.gateway.site.school_id}), hub {settings.hub.host}:{settings.hub.port}"
        f"{' TLS' if settings.hub.tls else ''}, window {settings.window_s:g} s, "
        f"{len(loaded)} profiles"
    )
    table = Table("device", "profile", "room", "endpoint", "poll / expected", "points")
    for device in settings.devices:
        profile = loaded[device.profile]
        if device.modbus is not None and profile.modbus is not None:
            unit = (
                device.modbus.unit_id
                if device.modbus.unit_id is not None
                else (profile.modbus.default_unit_id)
            )
            endpoint = f"modbus {device.modbus.describe()} unit {unit}"
            cadence = f"{device.modbus.poll_interval_s or profile.modbus.poll_interval_s:g} s"
        else:
            assert device.mqtt is not None and profile.mqtt is not None
            endpoint = f"mqtt {profile.mqtt.state_topic(device.mqtt.topic)}"
            cadence = f"{profile.mqtt.expected_interval_s:g} s"
        table.add_row(
            device.id, profile.id, device.room, endpoint, cadence, str(len(profile.point_names))
        )
    console.print(table)
    console.print("[green]ok[/green]")


@app.command()
def once(
    config: ConfigOption,
    profiles: ProfilesOption = None,
    wait_s: Annotated[
        float, typer.Option(help="How long to wait for MQTT devices to publish.")
    ] = 15.0,
) -> None:
    """Poll every device once and print the decoded values (like `telegraf --test`)."""
    settings, loaded = _load_or_exit(config, profiles)
    modbus, mqtt = build_sources(settings, loaded)

    async def collect() -> dict[str, Reading | str]:
        results: dict[str, Reading | str] = {}
        if modbus is not None:
            for coordinator, outcome in await modbus.poll_once():
                results[coordinator.device_id] = (
                    str(outcome) if isinstance(outcome, ModbusSourceError) else outcome
                )
        if mqtt is not None:
            expected = {s.device for s in mqtt.device_states()}
            all_heard = asyncio.Event()

            def take(reading: Reading) -> None:
                results.setdefault(reading.device, reading)
                if expected <= results.keys():
                    all_heard.set()

            await mqtt.start(take)
            try:
                async with asyncio.timeout(wait_s):
                    await all_heard.wait()
            except TimeoutError:
                for device in expected - results.keys():
                    results[device] = f"no message within {wait_s:g} s"
            finally:
                await mqtt.stop()
        return results

    results = asyncio.run(collect())
    table = Table("device", "point", "value", "unit")
    failed = False
    for device in settings.devices:
        outcome = results.get(device.id, "not polled")
        if isinstance(outcome, str):
            failed = True
            table.add_row(device.id, "[red]error[/red]", outcome, "")
            continue
        for point, value in outcome.values.items():
            table.add_row(device.id, point, f"{value:g}", loaded[device.profile].unit_of(point))
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def write(
    config: ConfigOption,
    device: Annotated[str, typer.Argument(help="Device id from agent.yaml.")],
    point: Annotated[
        str | None, typer.Argument(help="Writable point (see the profile's writes:).")
    ] = None,
    value: Annotated[float | None, typer.Argument(help="Value in engineering units.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Run this named action of the profile instead.")
    ] = None,
    retries: Annotated[int, typer.Option(min=0, max=5, help="Retries after a failed try.")] = 2,
    profiles: ProfilesOption = None,
) -> None:
    """Write a point (or run a named action) on a device and read it back, for technicians.

    The write holds the device's automatic actions off that point for manual_hold_s, is audited
    in the agent's data directory and reported to the hub with the next uplink."""
    settings, loaded = _load_or_exit(config, profiles)
    if (action is None) == (point is None) or (point is not None and value is None):
        errors.print("[red]error[/red] give POINT and VALUE, or --action NAME")
        raise typer.Exit(2)
    result = asyncio.run(
        technician_write(settings, loaded, device, point, value, action, retries=retries)
    )
    if isinstance(result, str):
        errors.print(f"[red]refused[/red] {result}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    table = Table("device", "target", "status", "read back", "attempts", "detail")
    table.add_row(
        device,
        result.target if result.value is None else f"{result.target} = {result.value:g}",
        f"[{'green' if result.ok else 'red'}]{result.status.value}[/]",
        "" if result.readback is None else f"{result.readback:g}",
        str(result.attempts),
        result.detail,
    )
    console.print(table)
    if not result.ok:
        raise typer.Exit(1)


@app.command("sample-config")
def sample_config() -> None:
    """Print a commented sample agent.yaml."""
    sys.stdout.write(SAMPLE_CONFIG)


@outbox_app.command("stats")
def outbox_stats(config: ConfigOption, profiles: ProfilesOption = None) -> None:
    """Depth by kind, last seq, the oldest waiting row, disk budget, merges and drops."""
    settings, _ = _load_or_exit(config, profiles)
    path = settings.data_dir / OUTBOX_FILE
    if not path.exists():
        console.print(f"no outbox at {path} (the agent has not run yet)")
        return
    with Outbox(path, budget_bytes=settings.outbox.budget_bytes) as outbox:
        stats = outbox.stats()
        budget = outbox.budget_report()
    console.print(f"outbox {stats.path}: {stats.depth} rows waiting, last seq {stats.last_seq}")
    console.print(
        f"disk budget: {budget.bytes / 2**20:.1f} of {budget.budget_bytes / 2**20:.0f} MiB; "
        f"{budget.merged_windows} windows merged, {budget.discarded_windows} windows dropped"
    )
    for reason, count in budget.discarded.items():
        console.print(f"dropped {reason}: {count}")
    if stats.oldest_created_at is not None:
        oldest = datetime.fromtimestamp(stats.oldest_created_at, UTC).isoformat(timespec="seconds")
        console.print(f"oldest waiting row written {oldest}")
    table = Table("kind", "rows")
    for kind, count in stats.by_kind.items():
        table.add_row(kind, str(count))
    console.print(table)
