"""Poking a running demo: faults on simulated devices, a school's uplink, the hub broker.

``DemoControl`` does the pokes; ``build_app`` serves them as a small HTTP API on 127.0.0.1
(``campus poke …`` is its command-line client). Every poke answers with one line that says
what changed, and ``GET /`` lists what is active.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from campus_cli.brokers import DemoBroker
from campus_cli.uplink_proxy import UplinkProxy
from simulators.devices import SimulatedDevice
from simulators.faults import Fault, FaultKind
from simulators.fleet import RunningFleet

Poke = Callable[[Request], Awaitable[str]]
Endpoint = Callable[[Request], Awaitable[JSONResponse]]


class PokeError(ValueError):
    """The poke names something the demo does not have, or cannot do; the message says which."""


@dataclass
class DemoControl:
    fleet: RunningFleet
    brokers: list[DemoBroker]  # the district hubs' (the first also serves the site listener)
    uplinks: dict[str, UplinkProxy]  # school id -> the relay its agent's uplink goes through
    set_values: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    broker_stopped: bool = False

    def _device(self, school: str, device: str) -> SimulatedDevice:
        if school not in self.fleet.schools:
            raise PokeError(f"no school {school!r} (schools: {', '.join(self.fleet.schools)})")
        devices = self.fleet.schools[school].devices
        if device not in devices:
            raise PokeError(f"{school}: no device {device!r} (devices: {', '.join(devices)})")
        return devices[device]

    def fault(self, school: str, device: str, kind: FaultKind | None) -> str:
        """Stop (``offline``), freeze (``stuck``), garble, … a device; ``None`` clears it."""
        self._device(school, device).set_fault(None if kind is None else Fault(kind))
        if kind is None:
            return f"{school}/{device}: fault cleared, serving normally"
        return f"{school}/{device}: {kind.value}"

    def set_value(self, school: str, device: str, point: str, value: float | None) -> str:
        """Serve ``value`` for ``point`` from now on; ``None`` lets the simulation drive it."""
        sim = self._device(school, device)
        if point not in sim.profile.point_names:
            known = ", ".join(sim.profile.point_names)
            raise PokeError(f"{school}/{device}: no point {point!r} (points: {known})")
        held = self.set_values.setdefault((school, device), {})
        if value is None:
            sim.fixed_values.pop(point, None)
            held.pop(point, None)
            return f"{school}/{device}.{point}: released"
        sim.fixed_values[point] = value
        held[point] = value
        return f"{school}/{device}.{point} = {value:g}"

    async def uplink(self, school: str, *, up: bool) -> str:
        if school not in self.uplinks:
            raise PokeError(f"no school {school!r} (schools: {', '.join(self.uplinks)})")
        proxy = self.uplinks[school]
        await (proxy.restore() if up else proxy.cut())
        if up:
            return f"{school}: uplink restored (its outbox drains now)"
        return f"{school}: uplink cut (its agent keeps readings in its outbox)"

    async def hub_broker(self, *, up: bool) -> str:
        if up and self.broker_stopped:
            for broker in self.brokers:
                await broker.start()
        elif not up and not self.broker_stopped:
            for broker in self.brokers:
                await broker.stop()
        self.broker_stopped = not up
        if up:
            return "hub brokers running (agents reconnect and drain their outboxes)"
        return "every district's hub broker stopped (the site listener too: it is the first's)"

    def active(self) -> list[str]:
        """Every fault, held value, cut uplink and stopped broker, one line each."""
        lines = []
        for school_id, school in self.fleet.schools.items():
            for device_id, device in school.devices.items():
                if device.fault is not None:
                    lines.append(f"{school_id}/{device_id}: {device.fault.kind.value}")
        for (school_id, device_id), values in self.set_values.items():
            lines.extend(f"{school_id}/{device_id}.{p} = {v:g}" for p, v in values.items())
        lines.extend(f"{school}: uplink cut" for school, p in self.uplinks.items() if p.is_cut)
        if self.broker_stopped:
            lines.append("hub broker stopped")
        return lines


def build_app(control: DemoControl) -> Starlette:
    """``POST`` to poke, ``DELETE`` to undo; ``GET /`` lists what is active."""

    def answer(work: Poke) -> Endpoint:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return JSONResponse({"ok": True, "message": await work(request)})
            except PokeError as exc:
                return JSONResponse({"ok": False, "message": str(exc)}, status_code=404)
            except (ValueError, KeyError) as exc:
                return JSONResponse({"ok": False, "message": str(exc)}, status_code=400)

        return endpoint

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"active": control.active(), "schools": list(control.uplinks)})

    async def device_fault(request: Request) -> str:
        p = request.path_params
        kind = None if request.method == "DELETE" else FaultKind(request.query_params["kind"])
        return control.fault(p["school"], p["device"], kind)

    async def point_value(request: Request) -> str:
        p = request.path_params
        value = None if request.method == "DELETE" else float(request.query_params["value"])
        return control.set_value(p["school"], p["device"], p["point"], value)

    async def uplink(request: Request) -> str:
        return await control.uplink(request.path_params["school"], up=request.method == "DELETE")

    async def broker(request: Request) -> str:
        return await control.hub_broker(up=request.method == "DELETE")

    both = ["POST", "DELETE"]
    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/schools/{school}/devices/{device}/fault", answer(device_fault), methods=both),
            Route(
                "/schools/{school}/devices/{device}/points/{point}",
                answer(point_value),
                methods=both,
            ),
            Route("/schools/{school}/uplink-cut", answer(uplink), methods=both),
            Route("/hub-broker-stopped", answer(broker), methods=both),
        ]
    )
