"""The technician status page: ``/`` (HTML), ``/status`` (JSON) and ``/metrics`` (Prometheus).

Served by uvicorn inside the agent's TaskGroup on a socket bound up front, so the port is known
(and a taken port reported) before anything is served. Uvicorn's own signal handling is switched
off: the process owner (``campus agent run``) handles SIGINT/SIGTERM and stops the agent, which
stops this server.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from html import escape

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from campus_forward.metrics import BudgetReport
from campus_protocol.messages import SiteIdentity
from edge_agent.status_view import DeviceStatusView, StatusSnapshot

log = logging.getLogger(__name__)

REFRESH_S = 5
SHUTDOWN_GRACE_S = 1  # open requests get this long once the agent stops

StatusFn = Callable[[], StatusSnapshot]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }
tr.failing td { background: #fde2e2; }
.ok { color: #126b12; font-weight: bold; }
.bad { color: #a40000; font-weight: bold; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
"""


def build_app(status: StatusFn, site: SiteIdentity) -> Starlette:
    """The status routes over ``status`` (called on every request, on the event loop)."""

    # Handlers are ``async`` on purpose: ``status`` reads the agent's SQLite outbox, whose
    # connection belongs to the event-loop thread, so it must not run in a worker thread.
    async def status_json(request: Request) -> JSONResponse:
        return JSONResponse(status().to_dict())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(status(), site))

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/status", status_json, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def render_page(snapshot: StatusSnapshot, site: SiteIdentity) -> str:
    """The HTML page; every string from config, devices or errors is escaped."""
    school = site.school_name or site.school_id
    if snapshot.uplink_waiting_for_hub:
        uplink = (
            '<span class="bad">connected, waiting for the hub\'s session</span> (start the hub'
            " once: until then nothing is sent and the outbox keeps everything)"
        )
    elif snapshot.uplink_connected:
        uplink = '<span class="ok">connected</span>'
    else:
        reason = f" ({escape(snapshot.uplink_last_error)})" if snapshot.uplink_last_error else ""
        uplink = f'<span class="bad">disconnected</span>{reason}'
    rows = "\n".join(_device_row(d, snapshot.taken_at) for d in snapshot.devices)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>{escape(snapshot.gateway)} status</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Gateway {escape(snapshot.gateway)}</h1>
<dl>
<dt>School</dt><dd>{escape(school)}</dd>
<dt>Hub uplink</dt><dd>{uplink}</dd>
<dt>Outbox depth</dt><dd>{snapshot.outbox_depth}</dd>
{_outbox_rows(snapshot.outbox)}
<dt>Windows published</dt><dd>{snapshot.messages_published.get("telemetry", 0)}</dd>
<dt>Updated</dt><dd>{_clock_time(snapshot.taken_at)}</dd>
</dl>
<h2>Devices ({len(snapshot.devices)})</h2>
<table>
<thead><tr><th>Device</th><th>Room</th><th>Profile</th><th>Status</th><th>Current values</th>
<th>Last good reading</th><th>Failing for</th><th>Last error</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _outbox_rows(report: BudgetReport) -> str:
    """Disk budget, offline autonomy, merges and drops of the outbox."""
    used = f"{report.bytes / 2**20:.1f} of {report.budget_bytes / 2**20:.0f} MiB"
    used += f" ({100 * report.bytes / report.budget_bytes:.0f} %)"
    autonomy = (
        "not known yet"
        if report.offline_autonomy_h is None
        else f"{report.offline_autonomy_h:.1f} h at the current rate"
    )
    disk = (
        '<span class="ok">writable</span>'
        if report.disk == "ok"
        else f'<span class="bad">{escape(report.disk.replace("_", " "))}</span>'
    )
    dropped = ", ".join(f"{escape(k)}: {v}" for k, v in report.discarded.items()) or "none"
    return (
        f"<dt>Outbox disk</dt><dd>{disk}, {used}</dd>\n"
        f"<dt>Offline autonomy</dt><dd>{autonomy}</dd>\n"
        f"<dt>Windows merged</dt><dd>{report.merged_windows}</dd>\n"
        f"<dt>Dropped</dt><dd>{dropped} ({report.discarded_windows} windows)</dd>"
    )


def _device_row(device: DeviceStatusView, now: float) -> str:
    failing = device.status == "offline"
    room = f"{device.room_name} ({device.room})" if device.room_name else device.room
    last_ok = (
        "never"
        if device.last_ok_at is None
        else f"{_clock_time(device.last_ok_at)} ({_duration(now - device.last_ok_at)} ago)"
    )
    failing_for = "" if device.failing_for_s is None else _duration(device.failing_for_s)
    values = ", ".join(
        f"{point} {value:g} {device.units.get(point, '')}".rstrip()
        for point, value in device.values.items()
    )
    cells = [device.device, room, device.profile, device.status, values, last_ok, failing_for]
    cells.append(device.last_error)  # external input (device replies), escaped like the rest
    row_class = ' class="failing"' if failing else ""
    return f"<tr{row_class}>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _clock_time(at: float) -> str:
    """Gateway-local wall-clock time, as the technician's watch shows it."""
    return datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(seconds: float) -> str:
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


class _NoSignalServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StatusServer:
    """``bind()`` the listening socket, then ``await serve()`` until ``stop()``."""

    def __init__(self, status: StatusFn, site: SiteIdentity, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._config = uvicorn.Config(
            build_app(status, site),
            lifespan="off",
            log_config=None,  # keep the agent's logging setup
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = _NoSignalServer(self._config)
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def bind(self) -> int:
        """Listen on ``host:port`` (port 0 picks a free one); return the bound port.

        Raises ``OSError`` when the address is taken or not local.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.create_server((self.host, self.port), family=family)
        self.port = int(self._socket.getsockname()[1])
        return self.port

    async def serve(self) -> None:
        """Serve on the bound socket until ``stop()``; a failure is logged, never raised."""
        if self._socket is None:
            raise RuntimeError("bind() the status server before serving")
        try:
            await self._server.serve(sockets=[self._socket])
        except Exception:
            log.exception("status page on %s failed; the agent keeps running", self.url)

    def stop(self) -> None:
        """Ask the server to finish open requests and close (within about a second)."""
        self._server.should_exit = True

    def close(self) -> None:
        """Release the listening socket (also when it was bound but never served)."""
        if self._socket is not None:
            self._socket.close()
