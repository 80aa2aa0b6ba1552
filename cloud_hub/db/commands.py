"""Commands to devices and the audit of local actions: create, find, send, expire, apply results.

A hub command is ``pending`` until its gateway answers ``accepted`` (``delivered``), then
``succeeded`` or ``failed``; one still pending when its time-to-live runs out is ``expired``.
A gateway's local actions arrive as results with ``origin: local`` and are stored as finished
commands, so one table answers "what was written to this device, by whom, with what result".
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from campus_protocol.messages import CommandResult, CommandStatus
from cloud_hub.auth.scope import Scope
from cloud_hub.db.models import Device, DeviceCommand, DeviceCommandStatus

#: what a gateway's answer makes of a command
STATUS_OF_RESULT: dict[CommandStatus, DeviceCommandStatus] = {
    CommandStatus.ACCEPTED: DeviceCommandStatus.DELIVERED,
    CommandStatus.SUCCEEDED: DeviceCommandStatus.SUCCEEDED,
    CommandStatus.FAILED: DeviceCommandStatus.FAILED,
    CommandStatus.REJECTED: DeviceCommandStatus.FAILED,
    CommandStatus.EXPIRED: DeviceCommandStatus.EXPIRED,
}
FINAL = frozenset(
    {DeviceCommandStatus.SUCCEEDED, DeviceCommandStatus.FAILED, DeviceCommandStatus.EXPIRED}
)


def find_devices(
    session: Session, *, key: str, scope: Scope, gateway_id: str | None = None
) -> list[Device]:
    """Devices in ``scope`` whose agent-side id is ``key`` (on ``gateway_id`` when given)."""
    query = select(Device).where(Device.key == key, scope.gateways(Device.gateway_id))
    if gateway_id is not None:
        query = query.where(Device.gateway_id == gateway_id)
    return list(session.scalars(query.order_by(Device.gateway_id)))


def create_command(
    session: Session,
    *,
    device: Device,
    name: str,
    target: str,
    value: float | None,
    ttl_s: float,
    now: datetime,
    requested_by: str = "",
) -> DeviceCommand:
    command = DeviceCommand(
        id=uuid.uuid4().hex,
        gateway_id=device.gateway_id,
        device=device.key,
        name=name,
        target=target,
        value=value,
        status=DeviceCommandStatus.PENDING.value,
        origin="hub",
        requested_by=requested_by,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )
    session.add(command)
    session.flush()
    return command


def get_command(session: Session, command_id: str) -> DeviceCommand | None:
    """A command by id, whatever its scope (the publisher's and ingest's view)."""
    return session.get(DeviceCommand, command_id)


def due_for_sending(session: Session, *, now: datetime, resend_s: float) -> list[DeviceCommand]:
    """Pending, unexpired commands never sent or last sent ``resend_s`` ago."""
    query = select(DeviceCommand).where(
        DeviceCommand.status == DeviceCommandStatus.PENDING.value,
        DeviceCommand.expires_at > now,
        or_(
            DeviceCommand.sent_at.is_(None),
            DeviceCommand.sent_at <= now - timedelta(seconds=resend_s),
        ),
    )
    return list(session.scalars(query.order_by(DeviceCommand.created_at).limit(500)))


def mark_sent(session: Session, command: DeviceCommand, *, now: datetime) -> None:
    command.sent_at = now
    command.sends += 1


def expire_overdue(session: Session, *, now: datetime) -> int:
    """Pending commands past their time-to-live become ``expired``; returns how many."""
    result = session.execute(
        update(DeviceCommand)
        .where(
            DeviceCommand.status == DeviceCommandStatus.PENDING.value,
            DeviceCommand.expires_at <= now,
        )
        .values(
            status=DeviceCommandStatus.EXPIRED.value,
            detail="not delivered before its time-to-live ran out (gateway offline?)",
            updated_at=now,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def apply_result(session: Session, *, node: str, result: CommandResult, now: datetime) -> None:
    """Record a gateway's answer; a gateway can only answer for its own commands."""
    status = STATUS_OF_RESULT.get(result.status or CommandStatus.FAILED, DeviceCommandStatus.FAILED)
    if result.origin == "local":
        if session.get(DeviceCommand, result.id) is None:
            session.add(
                DeviceCommand(
                    id=result.id,
                    gateway_id=node,
                    device=result.device or "",
                    name="action",
                    target=result.target[:64],
                    value=result.value,
                    status=status.value,
                    detail=result.detail,
                    readback=result.readback,
                    attempts=result.attempts,
                    origin="local",
                    created_at=result.at or now,
                    updated_at=now,
                    expires_at=result.at or now,
                )
            )
        return
    command = session.get(DeviceCommand, result.id)
    if command is None or command.gateway_id != node:
        return  # unknown, or another gateway's: nothing to update
    current = DeviceCommandStatus(command.status)
    if current in FINAL and not (
        current is DeviceCommandStatus.EXPIRED and status in FINAL - {DeviceCommandStatus.EXPIRED}
    ):
        return  # final already (a late result may still settle an expired one)
    if status is DeviceCommandStatus.DELIVERED and current is not DeviceCommandStatus.PENDING:
        return
    command.status = status.value
    command.detail = result.detail
    if result.readback is not None:
        command.readback = result.readback
    if result.attempts:
        command.attempts = result.attempts
    command.updated_at = now
