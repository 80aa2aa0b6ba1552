"""Users and tokens for API tests, made straight in the hub database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token
from cloud_hub.auth.users import add_user

PASSWORD = "correct horse battery staple"


def make_user(
    sessions: sessionmaker[Session],
    username: str,
    role: Role,
    scope: str,
    *,
    now: datetime,
    ttl: timedelta = timedelta(hours=1),
) -> str:
    """Add ``username`` (password ``PASSWORD``) and return a bearer token issued at ``now``."""
    with sessions() as session, session.begin():
        user = add_user(
            session,
            username=username,
            password=PASSWORD,
            role=role,
            scope=Scope.parse(scope),
            now=now,
        )
        token, _ = issue_token(session, user=user, now=now, ttl=ttl)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
