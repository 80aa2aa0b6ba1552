"""Users: add, list, disable (revoke), authenticate. Keyword-only functions taking a Session."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_hub.auth.models import User
from cloud_hub.auth.passwords import hash_password, verify_password
from cloud_hub.auth.roles import Role, check_role_level
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import revoke_user_tokens

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class UserError(ValueError):
    """A user cannot be added or changed; the message names the field and the fix."""


def add_user(
    session: Session, *, username: str, password: str, role: Role, scope: Scope, now: datetime
) -> User:
    """Create an enabled user; refuses a taken name, a short password or a role/scope mismatch."""
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise UserError(f"username {username[:80]!r}: letters, digits and _.@- only, at most 64")
    if find_user(session, username=username) is not None:
        raise UserError(f"username {username!r}: already exists (revoke it or pick another name)")
    try:
        check_role_level(role, scope.level)
        password_hash = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    user = User(
        username=username,
        password_hash=password_hash,
        role=role.value,
        scope=str(scope),
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def revoke_user(session: Session, *, username: str, now: datetime) -> User:
    """Disable a user and revoke all its tokens at once."""
    user = find_user(session, username=username)
    if user is None:
        raise UserError(f"username {username!r}: no such user")
    user.disabled_at = user.disabled_at or now
    revoke_user_tokens(session, user_id=user.id, now=now)
    return user


def change_role(session: Session, *, username: str, role: Role, scope: Scope) -> str:
    """Give a user another role and scope (effective on its next request, tokens included);
    returns what it had, as ``"<role> <scope>"``."""
    user = find_user(session, username=username)
    if user is None:
        raise UserError(f"username {username!r}: no such user")
    try:
        check_role_level(role, scope.level)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    before = f"{user.role} {user.scope}"
    user.role, user.scope = role.value, str(scope)
    return before


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The enabled user with this password, else None (same cost whether the user exists)."""
    user = find_user(session, username=username)
    enabled = user is not None and user.disabled_at is None
    ok = verify_password(user.password_hash if user is not None else None, password)
    return user if ok and enabled else None
