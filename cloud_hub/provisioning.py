"""Gateway provisioning tied to approval: approving a gateway for a school makes its broker
credentials (and, optionally, a client certificate from the hub's CA) and grants its broker access;
revoking takes the access away and cuts a live connection at once.

The ``gateway_access`` table is the registry of approved gateways. Approving also binds the
gateway's row to its school, so the ingest checks (``cloud_hub.ingest.checks.check_site``) reject
and count a heartbeat that names another school; ``approved_school`` answers which school a
gateway was approved for (None when it is not, or no longer, approved).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_hub.auth.models import GatewayAccess
from cloud_hub.auth.scope import Scope
from cloud_hub.broker_access import merge_password_file, mosquitto_password_hash, reload_broker
from cloud_hub.certs import ClientCertificate, issue_client_certificate
from cloud_hub.db import topology
from cloud_hub.settings import ProvisioningSettings


class AccessState(StrEnum):
    APPROVED = "approved"
    REVOKED = "revoked"


class ProvisioningError(RuntimeError):
    """The broker's access could not be updated (file or reload failed): try again later."""


class NotConfigured(ProvisioningError):
    """This hub is not set up for what was asked (no provisioning section, no CA)."""


@dataclass(frozen=True)
class Credentials:
    """What a newly approved gateway needs; shown once and never stored in plain form."""

    gateway_id: str
    school_id: str
    password: str
    certificate: ClientCertificate | None


def approved_school(session: Session, *, gateway_id: str) -> str | None:
    """The school ``gateway_id`` is approved for, or None when it is not (or no longer) approved."""
    return session.scalar(
        select(GatewayAccess.school_id).where(
            GatewayAccess.gateway_id == gateway_id,
            GatewayAccess.state == AccessState.APPROVED,
        )
    )


def find_access(session: Session, *, gateway_id: str, scope: Scope) -> GatewayAccess | None:
    """The access record of ``gateway_id`` when its school is in ``scope``."""
    return session.scalar(
        select(GatewayAccess).where(
            GatewayAccess.gateway_id == gateway_id, scope.schools(GatewayAccess.school_id)
        )
    )


def list_access(session: Session, *, scope: Scope) -> list[GatewayAccess]:
    query = select(GatewayAccess).where(scope.schools(GatewayAccess.school_id))
    return list(session.scalars(query.order_by(GatewayAccess.gateway_id)))


class Provisioner:
    """Grants and takes away gateways' broker access; the database is the source of truth and the
    broker's password file is rewritten from it."""

    def __init__(self, settings: ProvisioningSettings | None) -> None:
        self.settings = settings

    def _configured(self) -> ProvisioningSettings:
        if self.settings is None:
            raise NotConfigured(
                "gateway provisioning is not configured (set provisioning.password_file and "
                "provisioning.pid_file in hub.yaml)"
            )
        return self.settings

    def approve(
        self,
        session: Session,
        *,
        gateway_id: str,
        school_id: str,
        actor: str,
        now: datetime,
        client_certificate: bool = False,
    ) -> Credentials:
        """Approve (or re-approve, rotating its password) ``gateway_id`` for ``school_id`` and grant
        it broker access. The caller commits; nothing is granted if this raises."""
        settings = self._configured()
        certificate = None
        if client_certificate:
            if settings.ca_dir is None:
                raise NotConfigured("client certificates need provisioning.ca_dir (the hub CA)")
            certificate = issue_client_certificate(settings.ca_dir, gateway_id)
        password = secrets.token_urlsafe(24)
        access = session.get(GatewayAccess, gateway_id)
        if access is None:
            access = GatewayAccess(gateway_id=gateway_id)
            session.add(access)
        access.school_id = school_id
        access.state = AccessState.APPROVED
        access.broker_hash = mosquitto_password_hash(password)
        access.certificate_serial = certificate.serial if certificate else ""
        access.approved_by, access.approved_at = actor, now
        access.revoked_by, access.revoked_at = "", None
        # bind the gateway to the school: ingest then rejects a heartbeat naming another school
        topology.ensure_gateway(session, node=gateway_id).school_id = school_id
        session.flush()
        self.sync(session)
        return Credentials(gateway_id, school_id, password, certificate)

    def revoke(self, session: Session, *, access: GatewayAccess, actor: str, now: datetime) -> None:
        """Take the gateway's broker access away; a live connection is closed by the broker."""
        self._configured()
        access.state = AccessState.REVOKED
        access.broker_hash = ""
        access.revoked_by, access.revoked_at = actor, now
        session.flush()
        self.sync(session)

    def sync(self, session: Session) -> None:
        """Rewrite the broker's password file from the registry and reload the broker."""
        settings = self._configured()
        rows = session.execute(
            select(GatewayAccess.gateway_id, GatewayAccess.state, GatewayAccess.broker_hash)
        ).all()
        granted = {g: h for g, state, h in rows if state == AccessState.APPROVED and h}
        managed = {g for g, _, _ in rows}
        try:
            merge_password_file(settings.password_file, granted=granted, managed=managed)
            reload_broker(settings.pid_file)
        except RuntimeError as exc:
            raise ProvisioningError(str(exc)) from None
