"""Opaque bearer tokens: ``cit_`` + 32 random bytes; the hub stores only their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud_hub.auth.models import ApiToken, User

TOKEN_PREFIX = "cit_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, *, user: User, now: datetime, ttl: timedelta, label: str = ""
) -> tuple[str, ApiToken]:
    """A new token for ``user`` valid for ``ttl``; the plain token is returned once only."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        digest=digest(token),
        label=label[:100],
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    return token, row


def find_valid_token(session: Session, *, token: str, now: datetime) -> ApiToken | None:
    """The token's row when it exists, is neither expired nor revoked, and its user is enabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = session.scalar(
        select(ApiToken)
        .join(User)
        .where(
            ApiToken.digest == digest(token),
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > now,
            User.disabled_at.is_(None),
        )
    )
    return row


def revoke_token(session: Session, *, token_id: int, now: datetime) -> None:
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_user_tokens(session: Session, *, user_id: int, now: datetime) -> int:
    """Revoke every live token of a user; returns how many."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
