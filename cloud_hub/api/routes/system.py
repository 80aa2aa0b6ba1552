"""GET /healthz and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud_hub.api.deps import SessionDep, SettingsDep

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """Liveness: the process answers and the database accepts a query."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "role": settings.role}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
