"""The demo's hub set-up, made in its database before the hub starts: a city administrator, and
every school's gateway approved through the same provisioning the API uses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from campus_protocol.messages import SiteIdentity
from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token
from cloud_hub.auth.users import add_user
from cloud_hub.db import topology
from cloud_hub.db.base import make_engine, make_sessionmaker
from cloud_hub.db.schema import migrate
from cloud_hub.provisioning import Provisioner
from cloud_hub.settings import ProvisioningSettings
from simulators.fleet import CityPlan

DEMO_ADMIN = "admin"


@dataclass(frozen=True)
class DemoAdmin:
    username: str
    password: str
    token: str  # a bearer token for scripts (and for the demo's own status polling)

    def how_to_sign_in(self, api: str, *, example: str = "/api/v1/schools") -> str:
        return (
            f"sign in: [bold]{self.username}[/bold] / [bold]{self.password}[/bold] at {api}/login"
            f"\nor: curl -H 'Authorization: Bearer {self.token}' {api}{example}"
        )


def make_demo_admin(database_url: str, city_id: str) -> DemoAdmin:
    """A city administrator with a random password, and a token valid for a day."""
    password = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            user = add_user(
                session,
                username=DEMO_ADMIN,
                password=password,
                role=Role.CITY_ADMIN,
                scope=Scope.parse(f"city:{city_id}"),
                now=now,
            )
            token, _ = issue_token(session, user=user, now=now, ttl=timedelta(days=1), label="demo")
            audit.record(
                session,
                actor="cli:demo",
                action="user.add",
                result=audit.Result.OK,
                at=now,
                target=DEMO_ADMIN,
                detail=f"{user.role} {user.scope}",
            )
    finally:
        engine.dispose()
    return DemoAdmin(DEMO_ADMIN, password, token)


def approve_demo_gateways(
    database_url: str, plan: CityPlan, provisioning: ProvisioningSettings
) -> dict[str, str]:
    """Approve each school's gateway as the demo's administrator would through
    ``POST /api/v1/gateways/{id}/approve``; returns each gateway's broker password."""
    now = datetime.now(UTC)
    provisioner = Provisioner(provisioning)
    passwords = {}
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            for school in plan.schools:
                site = SiteIdentity.model_validate(plan.site_identity(school.id))
                topology.upsert_site(session, site=site)
                credentials = provisioner.approve(
                    session, gateway_id=school.gateway_id, school_id=school.id, actor=DEMO_ADMIN,
                    now=now,
                )  # fmt: skip
                passwords[school.gateway_id] = credentials.password
                audit.record(
                    session, actor=DEMO_ADMIN, action="gateway.approve", result=audit.Result.OK,
                    at=now, target=f"gateway:{school.gateway_id}", detail=f"school {school.id}",
                )  # fmt: skip
    finally:
        engine.dispose()
    return passwords
