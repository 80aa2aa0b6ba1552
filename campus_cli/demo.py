"""``campus demo``: a simulated city on one machine, with the embedded defaults.

Runs the three tiers: one regional hub per district, each with its own broker (Mosquitto with a
TLS hub listener when installed, else the plain in-process amqtt broker) and SQLite database,
forwarding to a central hub with its own broker and database; one simulated device fleet; and one
edge agent process per school. Waits until every school is online and prints the dashboards, the
API and every agent's status page URL, and where the city-wide view is. Each agent's uplink goes
through a relay the demo can cut, and a small control API (``campus poke …``) injects faults while
it runs. An agent or hub that exits is reported and restarted. Ctrl-C (or ``--duration``) stops
everything in reverse order, quietly: the demo's own log lines go to ``<workdir>/demo.log``.
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
from campus_cli.demo_tiers import CentralBroker, Tier, federation_env, hub_env, regional_node
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
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the first district hub's REST API.")
    ] = 8000,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Stop by itself after this many seconds.")
    ] = None,
    window_s: Annotated[float, typer.Option(min=1, help="Agents' aggregation window.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated city.")] = 2026,
    workdir: Annotated[
        Path, typer.Option(help="Where broker, hub and agents keep their files.")
    ] = Path("var/demo"),
) -> None:
    """Run a simulated city (districts x schools): a regional hub per district under a central
    hub, and one edge agent per school."""
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
    plan = options.plan
    supervisor = Supervisor(options.workdir / "logs")
    central_broker = CentralBroker(
        options.workdir / "central-broker", [regional_node(d.id) for d in plan.districts]
    )
    await central_broker.start()
    brokers: dict[str, DemoBroker] = {}
    uplinks: dict[str, UplinkProxy] = {}
    fleet: RunningFleet | None = None
    control: DemoControl | None = None
    server: QuietServer | None = None
    try:
        for district in plan.districts:
            gateways = [school.gateway_id for school in district.schools]
            workdir = options.workdir / f"broker-{district.id}"
            brokers[district.id] = await start_demo_broker(workdir, gateways)
        first = brokers[plan.districts[0].id]
        console.print(f"district brokers (one per district hub): {first.describe()}")
        console.print(f"central broker: {central_broker.describe()}")
        for school in plan.schools:
            broker = brokers[school.district_id]
            uplinks[school.id] = UplinkProxy(broker.host, broker.port)
            await uplinks[school.id].start()
        fleet = await run_fleet(
            plan,
            host="127.0.0.1",
            site_broker_host=first.host,
            site_broker_port=first.site_port or first.port,
            clock=SimClock(speed=1.0, start=school_morning(at=time(9, 0))),
        )
        control = DemoControl(fleet=fleet, brokers=list(brokers.values()), uplinks=uplinks)
        server = QuietServer(build_app(control))
        await server.start()
        (options.workdir / CONTROL_FILE).write_text(server.url)
        hubs, passwords = _prepare_district_hubs(options, brokers, central_broker)
        central = _prepare_central_hub(options, central_broker)
        # together: an uplink waits for its hub's session marker before it sends anything
        for tier in [central, *hubs.values()]:
            tier.start(supervisor)
        for tier in [central, *hubs.values()]:
            await _until_stopped(stop, _wait_until_subscribed(tier.api, supervisor))
        status_pages: dict[str, str] = {}
        for school in plan.schools:
            status_port = free_port()
            config = _write_agent_config(
                school, fleet, brokers[school.district_id], passwords[school.gateway_id], options,
                site_broker=first, uplink_port=uplinks[school.id].port, status_port=status_port,
            )  # fmt: skip
            supervisor.start(school.gateway_id, "agent", "run", "--config", str(config))
            status_pages[school.id] = f"http://127.0.0.1:{status_port}/"
        started = wall.monotonic()
        districts = list(hubs.values())
        await _until_stopped(stop, _wait_until_online(districts, supervisor, len(plan.schools)))
        took = wall.monotonic() - started
        console.print(f"all {len(plan.schools)} schools online after {took:.1f} s")
        console.print(await _schools_table(districts, status_pages))
        console.print(_hubs_table(central, hubs))
        first_hub = districts[0]
        _print_how_to_use(first_hub.api, supervisor, options)
        assert first_hub.admin is not None and central.admin is not None
        sign_in = first_hub.admin.how_to_sign_in(first_hub.api)
        console.print(sign_in, highlight=False, soft_wrap=True)
        for other in districts[1:]:  # each district hub has its own users
            assert other.admin is not None
            line = f"{other.name}: [bold]{other.admin.username}[/bold] / "
            console.print(f"{line}[bold]{other.admin.password}[/bold] at {other.api}/login",
                          highlight=False, soft_wrap=True)  # fmt: skip
        city_wide = central.admin.how_to_sign_in(central.api, example="/api/v1/city/kpis")
        console.print(f"city-wide (central hub): {city_wide}", highlight=False, soft_wrap=True)
        console.print(
            f"or: campus hub kpis --config {options.workdir / CENTRAL_CONFIG} --id {plan.city_id}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        if example := _command_example(first_hub.api, first_hub.admin.token, plan.schools[0]):
            console.print(example, highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the demo.")
        watch = _watch(districts, central, supervisor, control, status_pages, options.duration,
                       started)  # fmt: skip
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
            for broker in brokers.values():
                await broker.stop()
        await central_broker.stop()
        failed = {name: code for name, code in codes.items() if code not in (0, -15)}
        if failed:
            console.print(f"[red]processes that did not exit cleanly:[/red] {failed}")


CENTRAL_CONFIG = "hub-central.yaml"


def _prepare_district_hubs(
    options: DemoOptions, brokers: dict[str, DemoBroker], central: CentralBroker
) -> tuple[dict[str, Tier], dict[str, str]]:
    """A regional hub per district (the first on ``--port``): its database with an administrator
    and its gateways approved; returns the hubs and every gateway's broker password."""
    plan = options.plan
    hubs: dict[str, Tier] = {}
    passwords: dict[str, str] = {}
    for index, district in enumerate(plan.districts):
        broker = brokers[district.id]
        url = f"sqlite:///{options.workdir / f'hub-{district.id}.db'}"
        tier = Tier(f"hub-{district.id}", options.port if index == 0 else free_port(), url)
        tier.admin = make_demo_admin(url, plan.city_id)
        if broker.provisioning is not None:
            own = CityPlan(plan.seed, plan.city_id, plan.city_name, (district,))
            passwords |= approve_demo_gateways(url, own, broker.provisioning)
        else:
            passwords |= {s.gateway_id: broker.password_for(s.gateway_id) for s in district.schools}
        tier.env = {
            **hub_env(broker, url),
            "CAMPUS_HUB_OFFLINE_AFTER_S": str(max(15.0, options.window_s * 3)),
            # a stopped device raises the hub's offline alarm within a minute, not in minutes
            "CAMPUS_HUB_DEVICE_OFFLINE_ALARM_S": str(DEVICE_OFFLINE_ALARM_S),
            "CAMPUS_HUB_HEALTH_CHECK_S": "2",
            **federation_env(central, district.id, options.workdir),
        }
        hubs[district.id] = tier
    return hubs, passwords


def _prepare_central_hub(options: DemoOptions, broker: CentralBroker) -> Tier:
    """The central hub: its own broker and database, and a config file for ``campus hub``."""
    url = f"sqlite:///{options.workdir / 'hub-central.db'}"
    tier = Tier("hub-central", free_port(), url)
    tier.admin = make_demo_admin(url, options.plan.city_id)
    tier.env = {**hub_env(broker, url), "CAMPUS_HUB_ROLE": "central"}
    config = {"role": "central", "database_url": url, "development": True}
    (options.workdir / CENTRAL_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return tier


def _hubs_table(central: Tier, hubs: dict[str, Tier]) -> Table:
    table = Table(title="Hubs")
    for column in ("tier", "districts", "API and dashboard"):
        table.add_column(column)
    table.add_row("central", "the city (from the regional hubs)", f"{central.api}/api/v1/city/kpis")
    for district_id, tier in hubs.items():
        table.add_row(f"regional ({regional_node(district_id)})", district_id, f"{tier.api}/")
    return table


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
        '-H \'Content-Type: application/json\' -d \'{"point": "brightness", "value": 120}\' '
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


def _write_agent_config(
    school: SchoolPlan,
    fleet: RunningFleet,
    broker: DemoBroker,
    password: str,
    options: DemoOptions,
    *,
    site_broker: DemoBroker,
    uplink_port: int,
    status_port: int,
) -> Path:
    """The school's agent.yaml: its uplink through the school's relay to its district's broker,
    its devices' site broker (the first district's: the fleet's one LAN), its status page on."""
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
        "site_broker": {"host": site_broker.host, "port": site_broker.site_port},
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
    hubs: list[Tier], supervisor: Supervisor, expected: int, timeout_s: float = 120
) -> None:
    deadline = wall.monotonic() + timeout_s
    last = -1
    while wall.monotonic() < deadline:
        _restart_exited(supervisor)
        try:
            schools = await _every_hubs(hubs, "/api/v1/schools")
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


async def _every_hubs(hubs: list[Tier], path: str) -> list[dict[str, Any]]:
    """``path``'s ``data`` from every district hub, concatenated (each with its admin's token)."""
    found: list[dict[str, Any]] = []
    for tier in hubs:
        assert tier.admin is not None
        headers = {"Authorization": f"Bearer {tier.admin.token}"}
        async with httpx.AsyncClient(headers=headers) as client:
            found += await _fetch(client, f"{tier.api}{path}")
    return found


async def _fetch(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(url, timeout=5)
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def _watch(
    hubs: list[Tier],
    central: Tier,
    supervisor: Supervisor,
    control: DemoControl,
    status_pages: dict[str, str],
    duration: float | None,
    started: float,
) -> None:
    """Every few seconds: restart what exited, and print one status line (and the city's)."""
    next_line = wall.monotonic() + STATUS_EVERY_S
    while duration is None or wall.monotonic() - started < duration:
        _restart_exited(supervisor)
        await asyncio.sleep(1.0)
        if wall.monotonic() < next_line:
            continue
        next_line += STATUS_EVERY_S
        with contextlib.suppress(httpx.HTTPError):
            schools = await _every_hubs(hubs, "/api/v1/schools")
            alerts = await _every_hubs(hubs, "/api/v1/alerts?state=active")
            line = status_line(
                datetime.now(), schools, alerts,
                backlog=await _backlog(status_pages.values()),
                active=control.active(),
                restarts=sum(c.restarts for c in supervisor.children),
            )  # fmt: skip
            console.print(line, highlight=False, soft_wrap=True)
            console.print(await _city_line(central), highlight=False, soft_wrap=True)


async def _city_line(central: Tier) -> str:
    """What the central hub knows: districts reporting and the city's campus IoT coverage."""
    assert central.admin is not None
    headers = {"Authorization": f"Bearer {central.admin.token}"}
    async with httpx.AsyncClient(headers=headers) as client:
        districts = (await client.get(f"{central.api}/api/v1/city/districts", timeout=5)).json()
        kpis = await client.get(f"{central.api}/api/v1/city/kpis", timeout=5)
    line = f"  central hub: {districts.get('count', 0)} districts reporting"
    if kpis.status_code == 200:
        values = {k["kpi"]: k["value"] for k in kpis.json()["kpis"]}
        line += f"; city campus IoT coverage {values.get('campus_iot_coverage')} %"
    return line


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


async def _schools_table(hubs: list[Tier], status_pages: dict[str, str]) -> Table:
    schools = await _every_hubs(hubs, "/api/v1/schools")
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
