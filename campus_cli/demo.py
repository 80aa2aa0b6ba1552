"""``campus demo``: a simulated city on one machine, with the embedded defaults.

Starts a broker (Mosquitto with a TLS hub listener when installed, else the plain in-process amqtt
broker), the hub on SQLite, one simulated device fleet, and one edge agent process per school;
waits until every school is online and prints the dashboard's, the API's and every agent's status
page URL. Each agent's uplink goes through a relay the demo can cut, and a small control API
(``campus poke …``) injects faults while it runs. An agent or hub that exits is reported and
restarted. Ctrl-C (or ``--duration``) stops everything in reverse order, quietly: the demo's own
log lines go to ``<workdir>/demo.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import time as wall
from collections.abc import Coroutine, Iterable
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

from campus_cli.brokers import DemoBroker, start_demo_broker
from campus_cli.demo_admin import approve_demo_gateways, make_demo_admin
from campus_cli.demo_control import DemoControl, build_app
from campus_cli.demo_status import status_line
from campus_cli.poke import CONTROL_FILE
from campus_cli.processes import Child, Supervisor
from campus_cli.quiet_server import QuietServer
from campus_cli.uplink_proxy import UplinkProxy
from cloud_hub.broker import free_port
from simulators.fleet import CityPlan, RunningFleet, SchoolPlan, plan_city, run_fleet
from simulators.signals import SimClock, school_morning

console = Console()


def demo(
    districts: Annotated[int, typer.Option(min=1, max=20, help="Districts in the city.")] = 3,
    schools_per_district: Annotated[
        int, typer.Option(min=1, max=50, help="Schools per district.")
    ] = 4,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the hub's REST API.")] = 8000,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Stop by itself after this many seconds.")
    ] = None,
    window_s: Annotated[float, typer.Option(min=1, help="Agents' aggregation window.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 2026,
    workdir: Annotated[
        Path, typer.Option(help="Where broker, hub and agents keep their files.")
    ] = Path("var/demo"),
) -> None:
    """Run a simulated city (districts x schools), the hub and one edge agent per school."""
    if not _port_is_free(port):
        console.print(f"[red]port {port} is already in use[/red]: pass --port with a free one")
        raise typer.Exit(1)
    plan = plan_city(districts, schools_per_district, seed=seed)
    options = DemoOptions(
        plan=plan, port=port, duration=duration, window_s=window_s, workdir=workdir
    )
    try:
        asyncio.run(run_demo(options))
    except DemoError as exc:
        console.print(f"[red]demo failed[/red]: {exc}")
        console.print("every process has been stopped")
        raise typer.Exit(1) from None
    console.print("[bold]demo stopped[/bold]: every process has exited")


class DemoError(RuntimeError):
    """The demo could not bring the city up; the message says which part and why."""


#: an agent or the hub restarted more often than this gives up the demo (it is crash-looping)
MAX_RESTARTS = 5
STATUS_EVERY_S = 10.0
DEVICE_OFFLINE_ALARM_S = 30


def _port_is_free(port: int) -> bool:
    """Whether the hub can listen on ``port`` (as uvicorn does: SO_REUSEADDR, so a port a
    previous run just released, still in TIME_WAIT, counts as free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DemoOptions:
    def __init__(
        self, *, plan: CityPlan, port: int, duration: float | None, window_s: float, workdir: Path
    ) -> None:
        self.plan = plan
        self.port = port
        self.duration = duration
        self.window_s = window_s
        self.workdir = workdir.resolve()

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'hub.db'}"


async def run_demo(options: DemoOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shutil.rmtree(options.workdir, ignore_errors=True)
    options.workdir.mkdir(parents=True)
    _log_to_file(options.workdir / "demo.log")
    with contextlib.suppress(_Stopped):
        await _run(options, stop)


def _log_to_file(path: Path) -> None:
    """Library log lines (pymodbus, aiomqtt, uvicorn) go to a file, not over the demo's output."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _run(options: DemoOptions, stop: asyncio.Event) -> None:
    gateways = [school.gateway_id for school in options.plan.schools]
    broker = await start_demo_broker(options.workdir / "broker", gateways)
    console.print(f"broker: {broker.describe()}")
    supervisor = Supervisor(options.workdir / "logs")
    uplinks = {school.id: UplinkProxy(broker.host, broker.port) for school in options.plan.schools}
    fleet: RunningFleet | None = None
    control: DemoControl | None = None
    server: QuietServer | None = None
    try:
        for proxy in uplinks.values():
            await proxy.start()
        fleet = await run_fleet(
            options.plan,
            host="127.0.0.1",
            site_broker_host=broker.host,
            site_broker_port=broker.site_port or broker.port,
            clock=SimClock(speed=1.0, start=school_morning(at=time(9, 0))),
        )
        control = DemoControl(fleet=fleet, broker=broker, uplinks=uplinks)
        server = QuietServer(build_app(control))
        await server.start()
        (options.workdir / CONTROL_FILE).write_text(server.url)
        api = f"http://127.0.0.1:{options.port}"
        admin = make_demo_admin(options.database_url, options.plan.city_id)
        if broker.provisioning is not None:
            passwords = approve_demo_gateways(
                options.database_url, options.plan, broker.provisioning
            )
        else:
            passwords = {gateway: broker.password_for(gateway) for gateway in gateways}
        _start_hub(supervisor, broker, options)
        # the hub's persistent session must exist before any gateway publishes
        await _until_stopped(stop, _wait_until_subscribed(api, supervisor))
        status_pages: dict[str, str] = {}
        for school in options.plan.schools:
            status_port = free_port()
            config = _write_agent_config(
                school, fleet, broker, passwords[school.gateway_id], options,
                uplink_port=uplinks[school.id].port, status_port=status_port,
            )  # fmt: skip
            supervisor.start(school.gateway_id, "agent", "run", "--config", str(config))
            status_pages[school.id] = f"http://127.0.0.1:{status_port}/"
        started = wall.monotonic()
        signed_in = {"Authorization": f"Bearer {admin.token}"}
        await _until_stopped(
            stop, _wait_until_online(api, signed_in, supervisor, len(options.plan.schools))
        )
        console.print(
            f"all {len(options.plan.schools)} schools online after "
            f"{wall.monotonic() - started:.1f} s"
        )
        console.print(await _schools_table(api, signed_in, status_pages))
        _print_how_to_use(api, supervisor, options)
        console.print(admin.how_to_sign_in(api), highlight=False, soft_wrap=True)
        if example := _command_example(api, admin.token, options.plan.schools[0]):
            console.print(example, highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the demo.")
        watch = _watch(api, signed_in, supervisor, control, status_pages, options.duration, started)
        await _until_stopped(stop, watch)
    finally:
        if server is not None:
            await server.stop()
        codes = await asyncio.to_thread(supervisor.stop_all)
        for proxy in uplinks.values():
            await proxy.close()
        if fleet is not None:
            await fleet.stop()
        if control is None or not control.broker_stopped:
            await broker.stop()
        failed = {name: code for name, code in codes.items() if code not in (0, -15)}
        if failed:
            console.print(f"[red]processes that did not exit cleanly:[/red] {failed}")


def _print_how_to_use(api: str, supervisor: Supervisor, options: DemoOptions) -> None:
    school = options.plan.schools[0]
    default_dir = options.workdir == Path("var/demo").resolve()
    demo_dir = "" if default_dir else f" --demo-dir {options.workdir}"
    by_profile = {d.profile: d.id for d in school.devices}
    device = by_profile.get("arlight_dali_logic_lite") or next(iter(by_profile.values()))
    amber = f"its school turns amber, a blue (IV) alert after {DEVICE_OFFLINE_ALARM_S} s"
    examples = [(f"stop-device {school.id} {device}", amber)]
    if gas := by_profile.get("honeywell_midas_gas"):
        examples.append((f"set {school.id} {gas} concentration 30", "an orange (II) gas alert"))
        offline_alert = "a yellow (III) offline alert from its safety rule within 2 min"
        examples.append((f"stop-device {school.id} {gas}", offline_alert))
    examples += [
        (f"cut-uplink {school.id}", "offline at the hub; restore-uplink drains its backlog"),
        ("stop-broker", "every uplink down; start-broker brings them back"),
    ]
    width = max(len(command) for command, _ in examples)
    console.print(
        f"\ndashboard: [bold]{api}/[/bold]   hub API: [bold]{api}/api/v1/schools[/bold]  "
        f"(docs: {api}/docs)\nlogs: {supervisor.log_dir}\n"
        "poke it from another terminal (campus poke --help):",
        highlight=False,
        soft_wrap=True,
    )
    for command, effect in examples:
        console.print(f"  campus poke {command:<{width}}  # {effect}", highlight=False)
    if demo_dir:
        console.print(f"  (add{demo_dir} to each)", highlight=False)


def _command_example(api: str, token: str, school: SchoolPlan) -> str | None:
    """A ready ``curl`` that dims the school's Zigbee blackboard light, and how to follow it."""
    light = next((d.id for d in school.devices if d.profile == "tuya_ts0601_dimmer"), None)
    if light is None:
        return None
    return (
        f"dim a light: curl -X POST -H 'Authorization: Bearer {token}' "
        "-H 'Content-Type: application/json' -d '{\"point\": \"brightness\", \"value\": 120}' "
        f"'{api}/api/v1/devices/{light}/commands?gateway_id={school.gateway_id}'"
        f"\n  then GET {api}/api/v1/commands/<id> shows its status and read-back value"
    )


async def _until_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends or Ctrl-C / SIGTERM sets ``stop``."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        console.print("stopping: agents, hub, simulators, broker")
        raise _Stopped
    task.result()


class _Stopped(Exception):
    """The user asked the demo to stop."""


def _start_hub(supervisor: Supervisor, broker: DemoBroker, options: DemoOptions) -> None:
    env = {
        "CAMPUS_HUB_DATABASE_URL": options.database_url,
        "CAMPUS_HUB_BROKER__HOST": broker.host,
        "CAMPUS_HUB_BROKER__PORT": str(broker.port),
        "CAMPUS_HUB_BROKER__USERNAME": broker.hub_username,
        "CAMPUS_HUB_BROKER__PASSWORD": broker.hub_password,
        "CAMPUS_HUB_OFFLINE_AFTER_S": str(max(15.0, options.window_s * 3)),
        # a stopped device raises the hub's offline alarm within a minute, not a profile's minutes
        "CAMPUS_HUB_DEVICE_OFFLINE_ALARM_S": str(DEVICE_OFFLINE_ALARM_S),
        "CAMPUS_HUB_HEALTH_CHECK_S": "2",
    }
    if broker.ca_file is not None:
        env["CAMPUS_HUB_BROKER__TLS__CA_FILE"] = str(broker.ca_file)
    if broker.provisioning is not None:
        env["CAMPUS_HUB_PROVISIONING__PASSWORD_FILE"] = str(broker.provisioning.password_file)
        env["CAMPUS_HUB_PROVISIONING__PID_FILE"] = str(broker.provisioning.pid_file)
        env["CAMPUS_HUB_PROVISIONING__CA_DIR"] = str(broker.provisioning.ca_dir)
    supervisor.start(
        "hub", "hub", "serve", "--host", "127.0.0.1", "--port", str(options.port), env=env
    )


def _write_agent_config(
    school: SchoolPlan,
    fleet: RunningFleet,
    broker: DemoBroker,
    password: str,
    options: DemoOptions,
    *,
    uplink_port: int,
    status_port: int,
) -> Path:
    """The school's agent.yaml: its uplink through the school's relay, its status page on."""
    agent_dir = options.workdir / "agents" / school.gateway_id
    agent_dir.mkdir(parents=True)
    hub: dict[str, Any] = {
        "host": broker.host,
        "port": uplink_port,
        "password": password,
    }
    if broker.ca_file is not None:
        hub["tls"] = {"ca_file": str(broker.ca_file)}
    config: dict[str, Any] = {
        "gateway": {"id": school.gateway_id, "site": options.plan.site_identity(school.id)},
        "hub": hub,
        "site_broker": {"host": broker.host, "port": broker.site_port},
        "data_dir": str(agent_dir),
        "window_s": options.window_s,
        "heartbeat_s": options.window_s,
        "status_port": status_port,
        "devices": fleet.agent_device_configs(school.id),
    }
    path = agent_dir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


async def _wait_until_subscribed(api: str, supervisor: Supervisor, timeout_s: float = 60.0) -> None:
    """Wait until the hub's ingest is subscribed to the broker (its ``/healthz`` says so)."""
    deadline = wall.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while wall.monotonic() < deadline:
            _restart_exited(supervisor)
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{api}/healthz", timeout=2)
                if response.json().get("ingest") == "subscribed":
                    return
            await asyncio.sleep(0.2)
    raise DemoError(
        f"the hub did not subscribe to the broker within {timeout_s:.0f} s; see the logs"
    )


async def _wait_until_online(
    api: str, headers: dict[str, str], supervisor: Supervisor, expected: int, timeout_s: float = 120
) -> None:
    deadline = wall.monotonic() + timeout_s
    last = -1
    async with httpx.AsyncClient(headers=headers) as client:
        while wall.monotonic() < deadline:
            _restart_exited(supervisor)
            try:
                schools = await _fetch(client, f"{api}/api/v1/schools")
            except httpx.HTTPError:
                schools = []
            online = sum(1 for s in schools if s["status"] == "online")
            if online != last:
                console.print(f"schools online: {online}/{expected}")
                last = online
            if online >= expected:
                return
            await asyncio.sleep(1)
    raise DemoError(f"only {last}/{expected} schools online after {timeout_s:.0f} s; see the logs")


async def _fetch(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(url, timeout=5)
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def _watch(
    api: str,
    headers: dict[str, str],
    supervisor: Supervisor,
    control: DemoControl,
    status_pages: dict[str, str],
    duration: float | None,
    started: float,
) -> None:
    """Every few seconds: restart what exited, and print one status line."""
    next_line = wall.monotonic() + STATUS_EVERY_S
    async with httpx.AsyncClient(headers=headers) as client:
        while duration is None or wall.monotonic() - started < duration:
            _restart_exited(supervisor)
            await asyncio.sleep(1.0)
            if wall.monotonic() < next_line:
                continue
            next_line += STATUS_EVERY_S
            with contextlib.suppress(httpx.HTTPError):
                schools = await _fetch(client, f"{api}/api/v1/schools")
                alerts = await _fetch(client, f"{api}/api/v1/alerts?state=active")
                line = status_line(
                    datetime.now(), schools, alerts,
                    backlog=await _backlog(status_pages.values()),
                    active=control.active(),
                    restarts=sum(c.restarts for c in supervisor.children),
                )  # fmt: skip
                console.print(line, highlight=False, soft_wrap=True)


async def _backlog(status_pages: Iterable[str]) -> int | None:
    """Messages waiting in every agent's outbox, from their status pages (None if none answer);
    a client of its own: the hub's bearer token is not for the agents."""
    depths = []
    async with httpx.AsyncClient() as client:
        for url in status_pages:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                status = (await client.get(f"{url}status", timeout=2)).json()
                depths.append(int(status["outbox_depth"]))
    return sum(depths) if depths else None


def _restart_exited(supervisor: Supervisor) -> None:
    """Report each child that exited, with its last log line, and start it again."""
    for child in supervisor.exited():
        if child.restarts >= MAX_RESTARTS:
            tail = "\n".join(child.last_log_lines())
            raise DemoError(
                f"{child.name} keeps exiting ({child.restarts} restarts, last code "
                f"{child.process.returncode}); last log lines:\n{tail}"
            )
        _report_exit(child)
        supervisor.restart(child)


def _report_exit(child: Child) -> None:
    last = next((line for line in reversed(child.last_log_lines()) if line.strip()), "")
    console.print(
        f"[yellow]{child.name} exited with code {child.process.returncode}[/yellow]"
        f" (last log line: {last.strip()[:160]!r}); restarting it",
        highlight=False,
        soft_wrap=True,
    )


async def _schools_table(api: str, headers: dict[str, str], status_pages: dict[str, str]) -> Table:
    async with httpx.AsyncClient(headers=headers) as client:
        schools = await _fetch(client, f"{api}/api/v1/schools")
    table = Table(title="Schools")
    for column in ("district", "school", "status", "devices online", "agent status page"):
        table.add_column(column)
    for s in schools:
        table.add_row(
            s["district"]["name"] or s["district"]["id"],
            f"{s['name']} ({s['id']})",
            s["status"],
            f"{s['devices']['online']}/{s['devices']['total']}",
            status_pages.get(s["id"], ""),
        )
    return table
