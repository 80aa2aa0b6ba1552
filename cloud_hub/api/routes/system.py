"""GET /healthz, GET /metrics and the self-refreshing status page at /."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud_hub.api.deps import NowDep, SessionDep, SettingsDep
from cloud_hub.api.routes.schools import to_public
from cloud_hub.db import topology

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """Liveness: the process answers and the database accepts a query."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "role": settings.role}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(session: SessionDep, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    """One table of schools and their status; the page reloads itself every 10 s."""
    rows = []
    for view in topology.list_schools(session):
        school = to_public(view, now=now, offline_after_s=settings.offline_after_s)
        cells = (
            school.id,
            school.name,
            school.district.name or school.district.id,
            school.status.value,
            f"{school.devices.online}/{school.devices.total}",
        )
        tds = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
        rows.append(f"<tr class={school.status.value}>{tds}</tr>")
    return HTMLResponse(
        _PAGE.format(rows="\n".join(rows) or "<tr><td colspan=5>no schools yet</td></tr>")
    )


_PAGE = """<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=10>
<title>campus hub</title><style>body{{font:14px sans-serif}}td,th{{padding:2px 8px}}
.online{{color:#070}}.degraded{{color:#a60}}.offline{{color:#b00}}</style></head><body>
<h1>Schools</h1><table>
<tr><th>id</th><th>name</th><th>district</th><th>status</th><th>devices online</th></tr>
{rows}
</table><p><a href=/docs>API</a></p></body></html>"""
