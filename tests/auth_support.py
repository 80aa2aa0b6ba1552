"""Users and tokens for API tests, made straight in the hub database."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.auth.models import User
from cloud_hub.auth.passwords import hash_password
from cloud_hub.auth.roles import Role, check_role_level
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token

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
    """Add ``username`` (password ``PASSWORD``) and return a bearer token issued at ``now``.

    Every test user shares one argon2 hash, made once: hashing is slow on purpose."""
    check_role_level(role, Scope.parse(scope).level)
    with sessions() as session, session.begin():
        user = User(
            username=username,
            password_hash=_password_hash(),
            role=role,
            scope=scope,
            created_at=now,
        )
        session.add(user)
        session.flush()
        token, _ = issue_token(session, user=user, now=now, ttl=ttl)
    return token


@cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
