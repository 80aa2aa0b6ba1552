"""GET /api/v1/tier: which tier this hub is (the dashboard says so in its header)."""

from __future__ import annotations

from fastapi import APIRouter

from cloud_hub.api import reported
from cloud_hub.api.deps import CurrentUser, SessionDep, SettingsDep
from cloud_hub.api.schemas import TierPublic

router = APIRouter(prefix="/api/v1/tier", tags=["system"])


@router.get("", response_model=TierPublic)
def get_tier(session: SessionDep, user: CurrentUser, settings: SettingsDep) -> TierPublic:
    """``regional`` or ``central``, the schools in your scope and, at a central hub, the
    regional hubs that report them (and how many are online)."""
    return reported.tier(session, settings=settings, scope=user.scope)
