"""``campus demo``: a simulated city on one machine, with the embedded defaults.

Starts a broker (Mosquitto with a TLS hub listener when installed, else the plain in-process amqtt
broker), the hub on SQLite, one simulated device fleet, and one edge agent process per school;
waits until every school is online and prints the API's URL. Ctrl-C (or ``--duration``) stops
everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import time as wall
from collections.abc import Coroutine
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
from campus_cli.processes import Supervisor
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


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
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
    with contextlib.suppress(_Stopped):
        await _run(options, stop)


async def _run(options: DemoOptions, stop: asyncio.Event) -> None:
    gateways = [school.gateway_id for school in options.plan.schools]
    broker = await start_demo_broker(options.workdir / "broker", gateways)
    console.print(f"broker: {broker.describe()}")
    supervisor = Supervisor(options.workdir / "logs")
    fleet: RunningFleet | None = None
    try:
        fleet = await run_fleet(
            options.plan,
            host="127.0.0.1",
            site_broker_host=broker.host,
            site_broker_port=broker.site_port or broker.port,
            clock=SimClock(speed=1.0, start=school_morning(at=time(9, 0))),
        )
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
        for school in options.plan.schools:
            password = passwords[school.gateway_id]
            config = _write_agent_config(school, fleet, broker, password, options)
            supervisor.start(school.gateway_id, "agent", "run", "--config", str(config))
        started = wall.monotonic()
        await _until_stopped(
            stop, _wait_until_online(api, admin.token, supervisor, len(options.plan.schools))
        )
        console.print(
            f"all {len(options.plan.schools)} schools online after "
            f"{wall.monotonic() - started:.1f} s"
        )
        console.print(await _schools_table(api, admin.token))
        console.print(
            f"\nhub API: [bold]{api}/api/v1/schools[/bold]  (docs: {api}/docs, "
            f"dashboard: {api}/)\n{admin.how_to_sign_in(api)}\n"
            f"logs: {supervisor.log_dir}\nCtrl-C stops the demo."
        )
        await _until_stopped(stop, _watch(api, admin.token, supervisor, options.duration, started))
    finally:
        codes = supervisor.stop_all()
        if fleet is not None:
            await fleet.stop()
        await broker.stop()
        failed = {name: code for name, code in codes.items() if code not in (0, -15)}
        if failed:
            console.print(f"[red]processes that did not exit cleanly:[/red] {failed}")


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
) -> Path:
    agent_dir = options.workdir / "agents" / school.gateway_id
    agent_dir.mkdir(parents=True)
    hub: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
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
        "devices": fleet.agent_device_configs(school.id),
    }
    path = agent_dir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


async def _fetch_schools(client: httpx.AsyncClient, api: str, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    response = await client.get(f"{api}/api/v1/schools", headers=headers, timeout=5)
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def _wait_until_subscribed(api: str, supervisor: Supervisor, timeout_s: float = 60.0) -> None:
    """Wait until the hub's ingest is subscribed to the broker (its ``/healthz`` says so)."""
    deadline = wall.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while wall.monotonic() < deadline:
            _raise_if_a_child_died(supervisor)
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(f"{api}/healthz", timeout=2)
                if response.json().get("ingest") == "subscribed":
                    return
            await asyncio.sleep(0.2)
    raise DemoError(
        f"the hub did not subscribe to the broker within {timeout_s:.0f} s; see the logs"
    )


async def _wait_until_online(
    api: str, token: str, supervisor: Supervisor, expected: int, timeout_s: float = 120
) -> None:
    deadline = wall.monotonic() + timeout_s
    last = -1
    async with httpx.AsyncClient() as client:
        while wall.monotonic() < deadline:
            _raise_if_a_child_died(supervisor)
            try:
                schools = await _fetch_schools(client, api, token)
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


async def _watch(
    api: str, token: str, supervisor: Supervisor, duration: float | None, started: float
) -> None:
    async with httpx.AsyncClient() as client:
        while duration is None or wall.monotonic() - started < duration:
            _raise_if_a_child_died(supervisor)
            await asyncio.sleep(min(10.0, duration or 10.0))
            with contextlib.suppress(httpx.HTTPError):
                schools = await _fetch_schools(client, api, token)
                counts = {
                    s: sum(1 for x in schools if x["status"] == s)
                    for s in ("online", "degraded", "offline")
                }
                console.print(f"{datetime.now():%H:%M:%S} schools {counts}")


def _raise_if_a_child_died(supervisor: Supervisor) -> None:
    for child in supervisor.exited():
        tail = child.log_path.read_text(errors="replace").splitlines()[-15:]
        raise DemoError(
            f"{child.name} exited with {child.process.returncode}; last log lines:\n"
            + "\n".join(tail)
        )


async def _schools_table(api: str, token: str) -> Table:
    async with httpx.AsyncClient() as client:
        schools = await _fetch_schools(client, api, token)
    table = Table(title="Schools")
    for column in ("district", "school", "gateway", "status", "devices online"):
        table.add_column(column)
    for s in schools:
        table.add_row(
            s["district"]["name"] or s["district"]["id"],
            f"{s['name']} ({s['id']})",
            s["gateway"]["id"],
            s["status"],
            f"{s['devices']['online']}/{s['devices']['total']}",
        )
    return table
