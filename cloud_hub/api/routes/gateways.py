"""Gateway provisioning: GET /api/v1/gateways, POST /api/v1/gateways/{id}/approve and /revoke."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_hub.api.deps import CurrentUser, NowDep, Reviewer, SessionDep, SettingsDep
from cloud_hub.api.security_schemas import (
    GatewayAccessList,
    GatewayAccessPublic,
    GatewayApproval,
    GatewayCredentials,
)
from cloud_hub.auth import audit
from cloud_hub.auth.models import GatewayAccess
from cloud_hub.auth.principal import Principal
from cloud_hub.auth.roles import ScopeLevel
from cloud_hub.certs import CertificateError
from cloud_hub.db.base import begin_write
from cloud_hub.db.models import District, School
from cloud_hub.provisioning import (
    AccessState,
    NotConfigured,
    Provisioner,
    ProvisioningError,
    find_access,
    list_access,
)

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])

GatewayId = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _provisioner(request: Request) -> Provisioner:
    provisioner: Provisioner = request.app.state.provisioner
    return provisioner


@router.get("", response_model=GatewayAccessList)
def list_gateways(session: SessionDep, user: CurrentUser) -> GatewayAccessList:
    """Approved and revoked gateways of the schools in the caller's scope."""
    rows = list_access(session, scope=user.scope)
    data = [GatewayAccessPublic.model_validate(r, from_attributes=True) for r in rows]
    return GatewayAccessList(data=data, count=len(data))


@router.post(
    "/{gateway_id}/approve",
    response_model=GatewayCredentials,
    responses={
        404: {"description": "school, district or gateway not found in your scope"},
        409: {"description": "this hub is not set up to provision (or to issue certificates)"},
        503: {"description": "the broker could not be updated; nothing was granted"},
    },
)
def approve_gateway(
    gateway_id: GatewayId,
    body: GatewayApproval,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Reviewer,
    now: NowDep,
) -> GatewayCredentials:
    """Approve a gateway for a school: its broker password (shown once; approving again rotates
    it) and, on request, a client certificate from the hub CA. A school not yet known is created
    in ``district_id`` (which must be in scope; a new district only by a city administrator)."""
    begin_write(session)
    log = _logger(session, user, "gateway.approve", f"gateway:{gateway_id}", now)
    if gateway_id == settings.broker.username:
        log(audit.Result.FAILED, "the hub's own broker user")
        raise HTTPException(422, f"gateway id {gateway_id!r} is reserved for the hub")
    if not _school_in_scope(session, user, body):
        log(audit.Result.NOT_FOUND, f"school {body.school_id}")
        raise HTTPException(404, f"school {body.school_id!r} not found")
    taken = session.get(GatewayAccess, gateway_id)
    if taken is not None and find_access(session, gateway_id=gateway_id, scope=user.scope) is None:
        log(audit.Result.NOT_FOUND, "gateway approved for a school out of scope")
        raise HTTPException(404, f"gateway {gateway_id!r} not found")
    try:
        credentials = _provisioner(request).approve(
            session,
            gateway_id=gateway_id,
            school_id=body.school_id,
            actor=user.username,
            now=now,
            client_certificate=body.client_certificate,
        )
    except (ProvisioningError, CertificateError) as exc:
        raise _failed(session, log, exc) from None
    log(audit.Result.OK, f"school {body.school_id}")
    certificate = credentials.certificate
    ca_dir = settings.provisioning.ca_dir if settings.provisioning else None
    return GatewayCredentials(
        gateway_id=gateway_id,
        school_id=body.school_id,
        username=gateway_id,
        password=credentials.password,
        ca_certificate=(ca_dir / "ca.crt").read_text() if certificate and ca_dir else None,
        client_certificate=certificate.cert_pem if certificate else None,
        client_key=certificate.key_pem if certificate else None,
    )


@router.post(
    "/{gateway_id}/revoke",
    response_model=GatewayAccessPublic,
    responses={404: {"description": "gateway not found in your scope"}},
)
def revoke_gateway(
    gateway_id: GatewayId, request: Request, session: SessionDep, user: Reviewer, now: NowDep
) -> GatewayAccessPublic:
    """Take a gateway's broker access away: the broker closes its connection at once."""
    begin_write(session)
    log = _logger(session, user, "gateway.revoke", f"gateway:{gateway_id}", now)
    access = find_access(session, gateway_id=gateway_id, scope=user.scope)
    if access is None or access.state != AccessState.APPROVED:
        log(audit.Result.NOT_FOUND, "no approved gateway in scope")
        raise HTTPException(404, f"gateway {gateway_id!r} not found")
    try:
        _provisioner(request).revoke(session, access=access, actor=user.username, now=now)
    except ProvisioningError as exc:
        raise _failed(session, log, exc) from None
    log(audit.Result.OK, f"school {access.school_id}")
    return GatewayAccessPublic.model_validate(access, from_attributes=True)


def _failed(
    session: Session, log: Callable[[audit.Result, str], None], exc: Exception
) -> HTTPException:
    """Undo the change, audit the failure, and say whose it is: 409 when this hub is not set up
    for it, 503 when the broker could not be updated (retry later)."""
    begin_write(session)  # rolls the change back
    log(audit.Result.FAILED, str(exc))
    return HTTPException(409 if isinstance(exc, NotConfigured) else 503, str(exc))


def _logger(
    session: Session, user: Principal, action: str, target: str, now: datetime
) -> Callable[[audit.Result, str], None]:
    """Append the outcome to the audit log and commit it (with the change, when there is one)."""

    def log(result: audit.Result, detail: str) -> None:
        audit.record(
            session, actor=user, action=action, result=result, at=now, target=target, detail=detail
        )
        session.commit()

    return log


def _school_in_scope(session: Session, user: Principal, body: GatewayApproval) -> bool:
    """Whether the school is in scope, creating it (and its district, for a city administrator)
    when it is not known yet."""
    known = session.scalar(select(School.id).where(School.id == body.school_id))
    if known is not None:
        in_scope = select(School.id).where(School.id == known, user.scope.schools(School.id))
        return session.scalar(in_scope) is not None
    if body.district_id is None:
        return False
    district = session.get(District, body.district_id)
    if district is None:
        if user.scope.level is not ScopeLevel.CITY:
            return False
        session.add(District(id=body.district_id, city_id=user.scope.id))
    elif (
        session.scalar(
            select(District.id).where(District.id == district.id, user.scope.districts(District.id))
        )
        is None
    ):
        return False
    session.add(School(id=body.school_id, name=body.school_name, district_id=body.district_id))
    session.flush()
    return True
