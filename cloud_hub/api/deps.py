"""Typed dependencies for routes: the session, settings, clock, and who is calling.

``CurrentUser`` authenticates (hub token, session cookie or identity-provider JWT) and answers 401
otherwise. ``Operator`` also requires a role that may act (not a viewer), ``Reviewer`` a city
administrator or district operator, and ``CityAdmin`` a city administrator; each answers 403.
Every refusal is written to the audit log. How a route uses them: see ``cloud_hub.auth``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy.orm import Session

from cloud_hub.auth import audit
from cloud_hub.auth.oidc import InvalidBearer, JwtVerifier
from cloud_hub.auth.principal import Principal
from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import TOKEN_PREFIX, find_valid_token
from cloud_hub.auth.users import find_user
from cloud_hub.settings import HubSettings

SESSION_COOKIE = "campus_token"


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_settings(request: Request) -> HubSettings:
    settings: HubSettings = request.app.state.settings
    return settings


def get_now() -> datetime:
    return datetime.now(UTC)


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[HubSettings, Depends(get_settings)]
NowDep = Annotated[datetime, Depends(get_now)]

_bearer = HTTPBearer(auto_error=False, description="A hub token (POST /api/v1/auth/login) or a JWT")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def get_optional_user(
    request: Request, session: SessionDep, now: NowDep, credentials: BearerDep
) -> Principal | None:
    """The caller, or None when no credentials came; invalid credentials are a 401."""
    token = credentials.credentials if credentials else request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    source = client_address(request)
    if token.startswith(TOKEN_PREFIX):
        row = find_valid_token(session, token=token, now=now)
        if row is not None:
            user = row.user
            return Principal(
                user.username, Role(user.role), Scope.parse(user.scope), source, row.id
            )
        deny(request, now=now, status=401, reason="unknown, expired or revoked token")
    verifier: JwtVerifier | None = request.app.state.jwt_verifier
    if verifier is None:
        deny(request, now=now, status=401, reason="not a hub token and no identity provider set")
    try:
        username, role, scope = verifier.verify(token, now=now)
    except InvalidBearer as exc:
        deny(request, now=now, status=401, reason=str(exc), actor="anonymous")
    local = find_user(session, username=username)
    if local is not None and local.disabled_at is not None:
        deny(request, now=now, status=401, reason="jwt subject is revoked", actor=username)
    return Principal(username, role, scope, source)


OptionalUser = Annotated[Principal | None, Depends(get_optional_user)]


def get_current_user(request: Request, user: OptionalUser, now: NowDep) -> Principal:
    if user is None:
        deny(request, now=now, status=401, reason="no credentials")
    return user


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_operator(request: Request, user: CurrentUser, now: NowDep) -> Principal:
    if not user.may_act:
        deny(request, now=now, status=403, reason=f"{user.role.value} may not act", actor=user)
    return user


Operator = Annotated[Principal, Depends(get_operator)]


def get_reviewer(request: Request, user: CurrentUser, now: NowDep) -> Principal:
    if user.role not in (Role.CITY_ADMIN, Role.DISTRICT_OPERATOR):
        deny(request, now=now, status=403, reason="city or district staff only", actor=user)
    return user


Reviewer = Annotated[Principal, Depends(get_reviewer)]
"""City administrators and district operators: who approves and revokes gateways."""


def get_city_admin(request: Request, user: CurrentUser, now: NowDep) -> Principal:
    if user.role is not Role.CITY_ADMIN:
        deny(request, now=now, status=403, reason="city administrators only", actor=user)
    return user


CityAdmin = Annotated[Principal, Depends(get_city_admin)]


def not_found(
    request: Request, *, user: Principal, now: datetime, what: str, detail: str | None = None
) -> HTTPException:
    """The 404 for an id that is unknown or out of ``user``'s scope (the same answer, so ids do
    not leak), noted in the audit log; ``detail`` replaces "<what> not found";
    ``raise not_found(...)``."""
    audit.record_now(
        request.app.state.sessions,
        actor=user,
        action="request",
        result=audit.Result.NOT_FOUND,
        at=now,
        target=f"{request.method} {request.url.path}",
        source=client_address(request),
        detail=f"{what} not found in scope {user.scope}",
    )
    return HTTPException(404, detail or f"{what} not found")


def deny(
    request: Request,
    *,
    now: datetime,
    status: int,
    reason: str,
    actor: Principal | str = "anonymous",
) -> NoReturn:
    """Record a refused request in the audit log (its own transaction) and raise 401 or 403."""
    audit.record_now(
        request.app.state.sessions,
        actor=actor,
        action="request",
        result=audit.Result.DENIED,
        at=now,
        target=f"{request.method} {request.url.path}",
        source=client_address(request),
        detail=reason,
    )
    if status == 401:
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(403, "not allowed for your role")


def _storable(value: datetime) -> datetime:
    """A query time the database can compare with: its UTC form exists (0001-01-01T00:00+00:01
    does not: it is before year 1 in UTC)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


#: a time in a query string: with its timezone, and one the database can hold
QueryTime = Annotated[AwareDatetime, AfterValidator(_storable)]
