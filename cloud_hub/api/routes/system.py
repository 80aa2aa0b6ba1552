"""GET /healthz and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud_hub.api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """Liveness: the process answers and the database accepts a query. ``ingest`` says whether
    this process's ingest is subscribed to the hub broker (``off`` when it runs no ingest)."""
    session.execute(text("SELECT 1"))
    ingest = getattr(request.app.state, "ingest", None)
    subscribed = (
        "off" if ingest is None else ("subscribed" if ingest.connected.is_set() else "disconnected")
    )
    return {"status": "ok", "role": settings.role, "ingest": subscribed}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
