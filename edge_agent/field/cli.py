"""``campus agent scan | registers | doctor``: the technician's tools on the gateway's shell."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Column, Table

from campus_config import ConfigError
from device_profiles.loader import ProfileError, load_profiles
from device_profiles.schema import NUMBER_TYPES, REGISTER_COUNT, RegisterTable, RegisterType
from edge_agent.cli import ConfigOption, ProfilesOption, _load
from edge_agent.field.doctor import Finding, examine
from edge_agent.field.every_way import Interpretation, interpret
from edge_agent.field.modbus_probe import Probe, UnitFinding, scan
from edge_agent.settings import ModbusEndpoint, ModbusTransport
from edge_agent.sources.modbus import ModbusSourceError

app = typer.Typer()
console = Console()
errors = Console(stderr=True)

HostOption = Annotated[
    str | None, typer.Option("--host", help="Modbus TCP device or gateway address.")
]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Modbus TCP port.")]
SerialOption = Annotated[
    str | None,
    typer.Option("--serial", help="RTU serial line instead of TCP, e.g. /dev/ttyUSB0."),
]
BaudOption = Annotated[int, typer.Option("--baudrate", min=300, max=921600, help="RTU line speed.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.05, max=30, help="Seconds to wait for each answer.")
]
TableOption = Annotated[
    RegisterTable, typer.Option("--table", help="holding (function 03) or input (04).")
]


def parse_units(text: str) -> list[int]:
    """``1-10``, ``3``, or a comma list of both: unit ids 0..247 in the order given."""
    units: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise typer.BadParameter(f"{part!r}: use ids such as 1-10 or 1,2,5") from None
        if not 0 <= first <= last <= 247:
            raise typer.BadParameter(f"{part!r}: unit ids run 0..247, low to high")
        units.extend(range(first, last + 1))
    return units


def _bus(host: str | None, port: int, serial: str | None, baudrate: int) -> ModbusEndpoint:
    # every failed read is reported in the table; pymodbus's own log (frame dumps) is not for here
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if (host is None) == (serial is None):
        errors.print("[red]error[/red] give either --host (Modbus TCP) or --serial (RTU)")
        raise typer.Exit(2)
    if serial is not None:
        return ModbusEndpoint(transport=ModbusTransport.RTU, serial_port=serial, baudrate=baudrate)
    return ModbusEndpoint(host=host, port=port)


@app.command("scan")
def scan_command(
    host: HostOption = None,
    port: PortOption = 502,
    serial: SerialOption = None,
    baudrate: BaudOption = 9600,
    units: Annotated[str, typer.Option(help="Unit ids to try: 1-247, 1-10 or 1,2,5.")] = "1-247",
    address: Annotated[
        int, typer.Option(min=0, max=65535, help="Register each unit is first asked for.")
    ] = 0,
    table: TableOption = RegisterTable.HOLDING,
    timeout: TimeoutOption = 0.3,
) -> None:
    """Ask every unit id on a bus whether it answers, and which known profile it reads as."""
    bus = _bus(host, port, serial, baudrate)
    ids = parse_units(units)
    profiles = {pid: p for pid, p in load_profiles().items() if p.modbus is not None}

    async def run() -> list[UnitFinding]:
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task(f"scanning {bus.describe()}", total=len(ids))
            async with Probe(bus, timeout) as probe:
                return await scan(
                    probe, ids, profiles, table=table, address=address,
                    progress=lambda unit: progress.advance(task),
                )  # fmt: skip

    try:
        findings = asyncio.run(run())
    except ModbusSourceError as exc:
        errors.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    found = [f for f in findings if f.answered]
    table_out = Table(
        "unit", "answer", "reads as (best first)", "sample values",
        caption="* the unit id is that profile's factory default",
    )  # fmt: skip
    for finding in found:
        best = finding.matches[0] if finding.matches else None
        sample = ", ".join(f"{k}={v:g}" for k, v in best.sample.items()) if best else ""
        profiles_text = (
            ", ".join(f"{m.profile}{' *' if m.default_unit else ''}" for m in finding.matches)
            or "no known profile"
        )
        table_out.add_row(str(finding.unit), finding.note, profiles_text, sample)
    console.print(f"{bus.describe()}: {len(found)} of {len(ids)} unit ids answered")
    if found:
        console.print(table_out)


#: columns of the ``registers`` table: 16-bit layout, wider layout, heading
_LAYOUT_COLUMNS = (
    ("AB", "ABCD", "ABCD"),
    ("", "CDAB", "CDAB"),
    ("BA", "BADC", "BADC"),
    ("", "DCBA", "DCBA"),
)
_LAYOUT_HELP = (
    "A..D: bytes from most to least significant. ABCD: as sent (Modbus default); "
    "CDAB: word swap; BADC: byte swap (16-bit: BA); DCBA: both."
)


def _cell(view: Interpretation) -> str:
    if view.value is None:
        return "NaN/inf"
    if view.type in (RegisterType.FLOAT32, RegisterType.FLOAT64):
        return f"{view.value:.7g}"
    return str(int(view.value))


@app.command("registers")
def registers_command(
    host: HostOption = None,
    port: PortOption = 502,
    serial: SerialOption = None,
    baudrate: BaudOption = 9600,
    unit: Annotated[int, typer.Option(min=0, max=247, help="Unit id of the device.")] = 1,
    address: Annotated[int, typer.Option(min=0, max=65535, help="First register.")] = 0,
    count: Annotated[int, typer.Option(min=1, max=125, help="How many registers.")] = 8,
    table: TableOption = RegisterTable.HOLDING,
    float64: Annotated[bool, typer.Option(help="Also decode 4-register float64.")] = False,
    timeout: TimeoutOption = 1.0,
) -> None:
    """Read raw registers and show them decoded every way, to find a device's register map.

    Each address is shown as int16/uint16 and as the start of int32/uint32/float32 (and with
    --float64, float64) in every word and byte order."""
    bus = _bus(host, port, serial, baudrate)

    async def read() -> list[int]:
        async with Probe(bus, timeout) as probe:
            return await probe.read(unit=unit, table=table, address=address, count=count)

    try:
        registers = asyncio.run(read())
    except ModbusSourceError as exc:
        errors.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    types = [t for t in NUMBER_TYPES if float64 or t is not RegisterType.FLOAT64]
    views: dict[tuple[int, RegisterType], dict[str, Interpretation]] = {}
    for view in interpret(registers, start=address, types=types):
        views.setdefault((view.address, view.type), {})[view.layout] = view
    out = Table(
        "address", "raw", "type",
        *(Column(heading, overflow="fold") for _, _, heading in _LAYOUT_COLUMNS),
        caption=_LAYOUT_HELP,
    )  # fmt: skip
    console.print(f"{bus.describe()} unit {unit} {table.value} {address}..{address + count - 1}")
    for offset, raw in enumerate(registers):
        first = True
        for rtype in types:
            layouts = views.get((address + offset, rtype))
            if layouts is None:
                continue
            narrow = REGISTER_COUNT[rtype] == 1
            cells = []
            for short, wide, _ in _LAYOUT_COLUMNS:
                shown = layouts.get(short if narrow else wide)
                cells.append(_cell(shown) if shown is not None else "")
            out.add_row(
                str(address + offset) if first else "", f"0x{raw:04x}" if first else "",
                rtype.value, *cells,
            )  # fmt: skip
            first = False
        out.add_section()
    console.print(out)


def _print_finding(finding: Finding) -> None:
    mark = "[green]ok  [/green]" if finding.ok else "[red]FAIL[/red]"
    console.print(f"{mark} {finding.check:<12} {finding.detail}", highlight=False, soft_wrap=True)
    if not finding.ok:
        console.print(f"     {'':<12} -> {finding.advice}", highlight=False, soft_wrap=True)


@app.command("doctor")
def doctor_command(
    config: ConfigOption,
    profiles: ProfilesOption = None,
    timeout: TimeoutOption = 3.0,
) -> None:
    """Check the config, the hub broker (reachable, TLS or plain, credentials, ACL), the clock,
    disk space and the outbox; one line of advice per problem (exit 1 when there is one)."""
    try:
        settings, loaded = _load(config, profiles)
    except (ConfigError, ProfileError) as exc:
        lines = str(exc).splitlines()
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        _print_finding(Finding(
            "config", f"{lines[0]}{more}",
            f"run `campus agent validate -c {config}` and fix each line it names",
        ))  # fmt: skip
        raise typer.Exit(1) from None
    tls = " TLS" if settings.hub.tls else ""
    findings = [Finding(
        "config", f"{config}: gateway {settings.gateway.id}, {len(settings.devices)} devices, "
        f"{len(loaded)} profiles, hub {settings.hub.host}:{settings.hub.port}{tls}",
    )]  # fmt: skip
    findings.extend(asyncio.run(examine(settings, timeout_s=timeout)))
    for finding in findings:
        _print_finding(finding)
    problems = sum(not f.ok for f in findings)
    console.print(f"{problems} problem{'s' if problems != 1 else ''} found")
    if problems:
        raise typer.Exit(1)
