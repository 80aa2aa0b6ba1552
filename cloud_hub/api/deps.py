"""Typed dependencies for routes. ``CurrentUser`` and ``Scope`` will join these (RBAC issue)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cloud_hub.settings import HubSettings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_settings(request: Request) -> HubSettings:
    settings: HubSettings = request.app.state.settings
    return settings


def get_now() -> datetime:
    return datetime.now(UTC)


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[HubSettings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(get_now)]
