"""``campus poke …``: inject faults into a running ``campus demo`` from another terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from simulators.faults import FaultKind

CONTROL_FILE = "control.url"  # written by the demo into its workdir

app = typer.Typer(
    help="Poke a running demo: stop or freeze a device, set a value, cut a school's uplink, "
    "stop the hub broker. `campus poke status` lists what is active.",
    no_args_is_help=True,
)
console = Console()

DemoDir = Annotated[
    Path, typer.Option("--demo-dir", help="The demo's --workdir (it holds control.url).")
]
School = Annotated[str, typer.Argument(help="School id, e.g. d1-s01.")]
Device = Annotated[str, typer.Argument(help="Device id, e.g. r101-air (see the dashboard).")]


def _call(demo_dir: Path, method: str, path: str, **params: str) -> None:
    url_file = demo_dir / CONTROL_FILE
    if not url_file.exists():
        console.print(f"[red]no running demo[/red]: {url_file} not found (start `campus demo`)")
        raise typer.Exit(1)
    base = url_file.read_text().strip()
    try:
        response = httpx.request(method, f"{base}{path}", params=params, timeout=15)
    except httpx.HTTPError as exc:
        console.print(f"[red]the demo does not answer at {base}[/red] ({exc}): is it running?")
        raise typer.Exit(1) from None
    body = response.json()
    if "active" in body:
        console.print("\n".join(body["active"]) or "nothing injected: the demo runs clean")
        return
    colour = "green" if body["ok"] else "red"
    console.print(f"[{colour}]{body['message']}[/{colour}]", highlight=False)
    if not body["ok"]:
        raise typer.Exit(1)


def _device_path(school: str, device: str) -> str:
    return f"/schools/{school}/devices/{device}"


@app.command()
def status(demo_dir: DemoDir = Path("var/demo")) -> None:
    """List the faults, held values, cut uplinks and stopped broker now in effect."""
    _call(demo_dir, "GET", "/")


@app.command("stop-device")
def stop_device(school: School, device: Device, demo_dir: DemoDir = Path("var/demo")) -> None:
    """The device stops answering (Modbus requests time out; an MQTT device goes quiet)."""
    _call(demo_dir, "POST", f"{_device_path(school, device)}/fault", kind=FaultKind.OFFLINE)


@app.command()
def freeze(school: School, device: Device, demo_dir: DemoDir = Path("var/demo")) -> None:
    """The device's values freeze at their current reading."""
    _call(demo_dir, "POST", f"{_device_path(school, device)}/fault", kind=FaultKind.STUCK)


@app.command()
def fault(
    school: School,
    device: Device,
    kind: Annotated[FaultKind, typer.Argument(help="See `campus sim list-faults`.")],
    demo_dir: DemoDir = Path("var/demo"),
) -> None:
    """Any simulated fault: offline, exception, stuck or garbage."""
    _call(demo_dir, "POST", f"{_device_path(school, device)}/fault", kind=kind.value)


@app.command()
def heal(school: School, device: Device, demo_dir: DemoDir = Path("var/demo")) -> None:
    """Clear the device's fault (a stopped or frozen device serves normally again)."""
    _call(demo_dir, "DELETE", f"{_device_path(school, device)}/fault")


@app.command("set")
def set_value(
    school: School,
    device: Device,
    point: Annotated[str, typer.Argument(help="Point name, e.g. co2.")],
    value: Annotated[float, typer.Argument(help="The value the device serves from now on.")],
    demo_dir: DemoDir = Path("var/demo"),
) -> None:
    """The device serves this value for the point (e.g. co2 1800 raises an alert)."""
    _call(demo_dir, "POST", f"{_device_path(school, device)}/points/{point}", value=str(value))


@app.command()
def release(
    school: School,
    device: Device,
    point: Annotated[str, typer.Argument(help="Point name.")],
    demo_dir: DemoDir = Path("var/demo"),
) -> None:
    """Let the simulation drive a point set with `campus poke set` again."""
    _call(demo_dir, "DELETE", f"{_device_path(school, device)}/points/{point}")


@app.command("cut-uplink")
def cut_uplink(school: School, demo_dir: DemoDir = Path("var/demo")) -> None:
    """Cut the school's link to the hub: it goes offline there and its outbox fills."""
    _call(demo_dir, "POST", f"/schools/{school}/uplink-cut")


@app.command("restore-uplink")
def restore_uplink(school: School, demo_dir: DemoDir = Path("var/demo")) -> None:
    """Restore the school's link: its backlog drains to the hub."""
    _call(demo_dir, "DELETE", f"/schools/{school}/uplink-cut")


@app.command("stop-broker")
def stop_broker(demo_dir: DemoDir = Path("var/demo")) -> None:
    """Stop the hub broker: every school's uplink goes down."""
    _call(demo_dir, "POST", "/hub-broker-stopped")


@app.command("start-broker")
def start_broker(demo_dir: DemoDir = Path("var/demo")) -> None:
    """Start the hub broker again: agents reconnect and drain their outboxes."""
    _call(demo_dir, "DELETE", "/hub-broker-stopped")
