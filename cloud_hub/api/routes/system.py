"""GET /healthz and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud_hub.api.deps import SettingsDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(request: Request, settings: SettingsDep) -> JSONResponse:
    """Whether this hub process can do its job: 200 ``ok``, or 503 ``unavailable`` when its
    database does not answer or its ingest lost the hub broker (a hub that cannot hear its
    gateways is not healthy, however well it answers). ``ingest`` is ``subscribed``,
    ``disconnected`` or ``off`` (this process runs no ingest); ``database`` is ``ok`` or
    ``unavailable``; ``federation`` whether a regional hub's uplink to the central hub is up
    (``off``: it forwards nothing)."""
    database = "ok"
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unavailable"
    ingest = getattr(request.app.state, "ingest", None)
    subscribed = (
        "off" if ingest is None else ("subscribed" if ingest.connected.is_set() else "disconnected")
    )
    forwarder = getattr(request.app.state, "forwarder", None)
    uplink = "off" if forwarder is None else (
        "connected" if forwarder.uplink.connected else "disconnected"
    )  # fmt: skip
    healthy = database == "ok" and subscribed != "disconnected"
    body = {
        "status": "ok" if healthy else "unavailable",
        "role": settings.role,
        "ingest": subscribed,
        "database": database,
        "federation": uplink,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
