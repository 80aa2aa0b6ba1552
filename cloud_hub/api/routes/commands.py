"""POST /api/v1/devices/{device_id}/commands and GET /api/v1/commands/{id}.

Sending needs a role that may act (``Operator``: not a viewer) on the device's school: a device
out of the caller's scope is not found (404), exactly like an unknown one. Every command sent is
in the audit log. Reading a command needs its gateway's school in scope.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status
from sqlalchemy import select

from cloud_hub.api.deps import CurrentUser, NowDep, Operator, SessionDep
from cloud_hub.api.schemas import CommandCreate, CommandPublic, IdQuery
from cloud_hub.auth import audit
from cloud_hub.db import commands
from cloud_hub.db.base import begin_write
from cloud_hub.db.models import DeviceCommand

router = APIRouter(prefix="/api/v1", tags=["commands"])

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
#: a device id in a path is bounded and printable, so hostile values get 422, not a database error
PathId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN.pattern)]


@router.post(
    "/devices/{device_id}/commands",
    response_model=CommandPublic,
    status_code=status.HTTP_202_ACCEPTED,
)
def send_command(
    device_id: PathId,
    body: CommandCreate,
    session: SessionDep,
    user: Operator,
    now: NowDep,
    request: Request,
    gateway_id: IdQuery = None,
) -> CommandPublic:
    """Queue a command for the device's gateway; poll ``GET /api/v1/commands/{id}`` for the result.

    ``device_id`` is the device's id on its gateway; ``gateway_id`` picks one when several
    gateways in your scope have a device of that id."""
    begin_write(session)
    found = commands.find_devices(session, key=device_id, gateway_id=gateway_id, scope=user.scope)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} not found")
    if len(found) > 1:
        gateways = ", ".join(d.gateway_id for d in found)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"device {device_id!r} is on several gateways ({gateways}): give ?gateway_id=",
        )
    write = body.action is None
    command = commands.create_command(
        session,
        device=found[0],
        name="write" if write else "action",
        target=(body.point if write else body.action) or "",
        value=body.value,
        ttl_s=body.ttl_s,
        now=now,
        requested_by=user.username,
    )
    audit.record(
        session,
        actor=user,
        action="command.send",
        result=audit.Result.OK,
        at=now,
        target=f"device:{found[0].gateway_id}/{device_id}",
        detail=f"command {command.id}: {command.target}"
        + ("" if command.value is None else f" = {command.value:g}"),
    )
    public = CommandPublic.model_validate(command, from_attributes=True)
    session.commit()
    publisher = getattr(request.app.state, "commands", None)
    if publisher is not None:
        publisher.wake()
    return public


@router.get("/commands/{command_id}", response_model=CommandPublic)
def get_command(command_id: str, session: SessionDep, user: CurrentUser) -> CommandPublic:
    """A command or local action record; an id that cannot exist is as unknown as any other."""
    if not ID_PATTERN.fullmatch(command_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"command {command_id[:64]!r} not found")
    command = session.scalar(
        select(DeviceCommand).where(
            DeviceCommand.id == command_id, user.scope.gateways(DeviceCommand.gateway_id)
        )
    )
    if command is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"command {command_id!r} not found")
    return CommandPublic.model_validate(command, from_attributes=True)
