"""What this hub process knows beyond its database, as route dependencies: how well it hears its
gateways (``cloud_hub.status.Hearing``) and the device profiles it loaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from cloud_hub.status import ALWAYS_HEARD, Hearing
from device_profiles.schema import Profile


def get_hearing(request: Request) -> Hearing:
    """What this process's health runner last saw of its ingest link (always heard without)."""
    runner = getattr(request.app.state, "health", None)
    hearing: Hearing = ALWAYS_HEARD if runner is None else runner.hearing
    return hearing


def get_profiles(request: Request) -> Mapping[str, Profile]:
    profiles: Mapping[str, Profile] = request.app.state.profiles
    return profiles


HearingDep = Annotated[Hearing, Depends(get_hearing)]
ProfilesDep = Annotated[Mapping[str, Profile], Depends(get_profiles)]
