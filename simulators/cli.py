"""``campus sim``: run a simulated city or one device, list fault kinds and device profiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from device_profiles.loader import ProfileError, load_profiles
from simulators.devices import MODELS, SimulatedDevice
from simulators.faults import FAULTS, Fault
from simulators.fleet import RunningFleet, plan_city, run_fleet
from simulators.modbus_server import ModbusServerError, ModbusSimServer, ServedUnit
from simulators.mqtt_device import MqttDevicePublisher
from simulators.signals import SimClock, school_morning

app = typer.Typer(
    help="Simulated school devices: whole cities or single devices.", no_args_is_help=True
)
console = Console()

StartOpt = Annotated[
    datetime | None,
    typer.Option(help="Simulated start time (default: the latest weekday at 08:00)."),
]
SpeedOpt = Annotated[float, typer.Option(min=0.001, help="Simulated seconds per wall second.")]
DurationOpt = Annotated[
    float, typer.Option(min=0, help="Wall seconds to run; 0 runs until Ctrl-C.")
]


async def _wait(duration: float) -> None:
    if duration > 0:
        await asyncio.sleep(duration)
    else:
        await asyncio.Event().wait()


def _run(main: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)


def _print_fleet(fleet: RunningFleet) -> None:
    table = Table(title=f"{fleet.plan.city_name}: {len(fleet.schools)} schools")
    for column in ("district", "school", "name", "gateway", "modbus", "devices"):
        table.add_column(column)
    for school in fleet.schools.values():
        district = fleet.plan.district(school.plan.district_id)
        devices = ", ".join(
            f"{d.id}@{school.unit_ids[d.id]}" if d.id in school.unit_ids else f"{d.id}(mqtt)"
            for d in school.plan.devices
        )
        table.add_row(
            district.name, school.plan.id, school.plan.name, school.plan.gateway_id,
            f"{fleet.host}:{school.server.port}", devices,
        )  # fmt: skip
    console.print(table)


def _write_agent_files(fleet: RunningFleet, out_dir: Path, broker: tuple[str, int]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for school_id, school in fleet.schools.items():
        fragment = {
            "gateway": {"id": school.plan.gateway_id, "site": fleet.plan.site_identity(school_id)},
            "site_broker": {"host": broker[0], "port": broker[1]},
            "devices": fleet.agent_device_configs(school_id),
        }
        (out_dir / f"{school_id}.yaml").write_text(yaml.safe_dump(fragment, sort_keys=False))
        index[school_id] = fragment
    (out_dir / "fleet.json").write_text(json.dumps(index, indent=2))
    console.print(f"agent device lists written to {out_dir}/<school_id>.yaml and fleet.json")


@app.command()
def fleet(
    districts: Annotated[int, typer.Option(min=1, max=99, help="Number of districts.")] = 2,
    schools_per_district: Annotated[
        int, typer.Option(min=1, max=99, help="Schools in each district.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="City seed: same seed, same city.")] = 1,
    host: Annotated[str, typer.Option(help="Address the Modbus servers bind to.")] = "127.0.0.1",
    site_broker_host: Annotated[str, typer.Option(help="Site MQTT broker host.")] = "127.0.0.1",
    site_broker_port: Annotated[int, typer.Option(help="Site MQTT broker port.")] = 1883,
    base_port: Annotated[
        int,
        typer.Option(
            min=0, max=65000, help="School i serves Modbus on base-port + i; 0 picks free ports."
        ),
    ] = 0,
    speed: SpeedOpt = 1.0,
    start: StartOpt = None,
    duration: DurationOpt = 0.0,
    out_dir: Annotated[
        Path | None, typer.Option(help="Write each school's agent device list here (YAML + JSON).")
    ] = None,
) -> None:
    """Run a reproducible city: a Modbus server per school, an MQTT publisher per MQTT device."""
    plan = plan_city(districts, schools_per_district, seed=seed)
    clock = SimClock(speed=speed, start=start or school_morning())

    async def main() -> None:
        running = await run_fleet(
            plan, host=host, site_broker_host=site_broker_host,
            site_broker_port=site_broker_port, clock=clock, base_port=base_port,
        )  # fmt: skip
        try:
            _print_fleet(running)
            if out_dir is not None:
                _write_agent_files(running, out_dir, (site_broker_host, site_broker_port))
            console.print(f"simulated time starts {clock.start:%a %Y-%m-%d %H:%M} at x{speed}")
            await _wait(duration)
        finally:
            await running.stop()

    _run(main())


def _parse_fixed(items: list[str]) -> dict[str, float]:
    fixed: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected point=number", param_hint="--fixed")
    return fixed


@app.command()
def device(
    profile: Annotated[str, typer.Argument(help="Profile id (see list-profiles).")],
    host: Annotated[str, typer.Option(help="Modbus bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Modbus port; 0 picks one.")] = 5020,
    unit_id: Annotated[
        int | None, typer.Option(min=1, max=247, help="Unit id (default: the profile's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Device seed.")] = 1,
    fixed: Annotated[
        list[str] | None, typer.Option(help="Serve a fixed value: point=number (repeatable).")
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option(help="Start with a fault: offline, stuck, garbage, exception[:2|4]."),
    ] = None,
    site_broker_host: Annotated[
        str, typer.Option(help="Site broker (MQTT profiles).")
    ] = "127.0.0.1",
    site_broker_port: Annotated[int, typer.Option(help="Site broker port (MQTT profiles).")] = 1883,
    topic: Annotated[
        str, typer.Option(help="Device base topic (MQTT profiles).")
    ] = "site/dev/sim-1",
    speed: SpeedOpt = 1.0,
    start: StartOpt = None,
    duration: DurationOpt = 0.0,
) -> None:
    """Run one simulated device by profile id (Modbus TCP server or MQTT publisher)."""
    try:
        profiles = load_profiles()
    except ProfileError as exc:
        raise typer.BadParameter(str(exc)) from None
    if profile not in profiles:
        raise typer.BadParameter(f"unknown profile {profile!r} (known: {', '.join(profiles)})")
    try:
        sim = SimulatedDevice(
            "sim-1", profiles[profile], seed=seed, fixed_values=_parse_fixed(fixed or [])
        )
        sim.set_fault(Fault.parse(fault) if fault else None)
    except (KeyError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    clock = SimClock(speed=speed, start=start or school_morning())
    modbus_map = profiles[profile].modbus

    async def main() -> None:
        if modbus_map is None:
            publisher = MqttDevicePublisher(
                sim, topic=topic, host=site_broker_host, port=site_broker_port, clock=clock
            )
            publisher.start()
            console.print(
                f"{profile}: publishing to {publisher.topic}"
                f" on {site_broker_host}:{site_broker_port}"
            )
            try:
                await _wait(duration)
            finally:
                await publisher.stop()
            return
        unit = unit_id or modbus_map.default_unit_id or 1
        server = ModbusSimServer([ServedUnit(unit, sim)], clock=clock, host=host, port=port)
        try:
            await server.start()
        except ModbusServerError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        console.print(f"{profile}: Modbus TCP on {host}:{server.port}, unit id {unit}")
        try:
            await _wait(duration)
        finally:
            await server.stop()

    _run(main())


@app.command("list-faults")
def list_faults() -> None:
    """List the fault kinds a simulated device can be given, and what a poller sees."""
    table = Table(title="fault kinds")
    for column in ("fault", "Modbus", "MQTT"):
        table.add_column(column)
    for kind, effect in FAULTS.items():
        table.add_row(kind.value, effect.modbus, effect.mqtt)
    console.print(table)


@app.command("list-profiles")
def list_profiles() -> None:
    """List the device profiles the simulator can serve."""
    try:
        profiles = load_profiles()
    except ProfileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title="device profiles")
    for column in ("id", "protocol", "domain", "points", "signals", "name"):
        table.add_column(column)
    for profile in profiles.values():
        table.add_row(
            profile.id, profile.protocol, profile.domain, str(len(profile.point_names)),
            "modelled" if profile.id in MODELS else "fixed/zero", profile.name,
        )  # fmt: skip
    console.print(table)
