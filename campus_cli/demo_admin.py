"""The demo's city administrator: made in the hub database before the hub starts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token
from cloud_hub.auth.users import add_user
from cloud_hub.db.base import create_schema, make_engine, make_sessionmaker

DEMO_ADMIN = "admin"


@dataclass(frozen=True)
class DemoAdmin:
    username: str
    password: str
    token: str  # a bearer token for scripts (and for the demo's own status polling)

    def how_to_sign_in(self, api: str) -> str:
        return (
            f"sign in: [bold]{self.username}[/bold] / [bold]{self.password}[/bold] at {api}/login"
            f"\nor: curl -H 'Authorization: Bearer {self.token}' {api}/api/v1/schools"
        )


def make_demo_admin(database_url: str, city_id: str) -> DemoAdmin:
    """A city administrator with a random password, and a token valid for a day."""
    password = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        create_schema(engine)
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
