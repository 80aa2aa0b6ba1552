"""POST /api/v1/auth/login, POST /api/v1/auth/logout, GET /api/v1/auth/me and the /login page."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from cloud_hub.api.deps import (
    SESSION_COOKIE,
    CurrentUser,
    NowDep,
    SessionDep,
    SettingsDep,
    client_address,
)
from cloud_hub.api.security_schemas import LoginRequest, MePublic, TokenPublic
from cloud_hub.auth import audit
from cloud_hub.auth.ratelimit import LOGIN_ACTION, LoginLimit
from cloud_hub.auth.roles import Role
from cloud_hub.auth.tokens import issue_token, revoke_token
from cloud_hub.auth.users import authenticate
from cloud_hub.db.base import begin_write

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
page_router = APIRouter(include_in_schema=False)


@router.post(
    "/login",
    response_model=TokenPublic,
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "rate limited"},
    },
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
) -> TokenPublic:
    """Exchange a username and password for a bearer token (also set as an HttpOnly cookie)."""
    source = client_address(request)
    auth = settings.auth
    limit = LoginLimit(auth.login_window_s, auth.login_max_per_user, auth.login_max_per_source)

    def log(result: audit.Result, detail: str) -> None:
        audit.record(
            session,
            actor=body.username,
            action=LOGIN_ACTION,
            result=result,
            at=now,
            target=body.username,
            source=source,
            detail=detail,
        )
        session.commit()

    blocked = limit.blocked(session, username=body.username, source=source, now=now)
    password = body.password
    user = None if blocked else authenticate(session, username=body.username, password=password)
    begin_write(session)  # after the password check: no write lock held while it hashes
    if blocked:
        log(audit.Result.DENIED, "rate limited")
        raise HTTPException(
            429,
            "too many failed logins: wait and retry",
            headers={"Retry-After": str(int(auth.login_window_s))},
        )
    if user is None:
        log(audit.Result.DENIED, "wrong username or password")
        raise HTTPException(
            401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    token, row = issue_token(
        session, user=user, now=now, ttl=timedelta(seconds=auth.token_ttl_s), label="login"
    )
    log(audit.Result.OK, f"token {row.id}")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(auth.token_ttl_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",  # behind TLS the cookie never travels in clear
    )
    return TokenPublic(
        access_token=token,
        expires_at=row.expires_at,
        username=user.username,
        role=Role(user.role),
        scope=user.scope,
    )


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, session: SessionDep, now: NowDep, response: Response) -> Response:
    """Revoke the token this request used (a JWT simply expires)."""
    begin_write(session)
    if user.token_id is not None:
        revoke_token(session, token_id=user.token_id, now=now)
    audit.record(
        session, actor=user, action="logout", result=audit.Result.OK, at=now, target=user.username
    )
    session.commit()
    response.delete_cookie(SESSION_COOKIE)
    response.status_code = 204
    return response


@router.get("/me", response_model=MePublic)
def me(user: CurrentUser) -> MePublic:
    """Who the token belongs to, its role and scope."""
    return MePublic(
        username=user.username, role=user.role, scope=str(user.scope), may_act=user.may_act
    )


@page_router.get("/login")
def login_page() -> HTMLResponse:
    return HTMLResponse(_LOGIN_PAGE)


_LOGIN_PAGE = """<!doctype html><html lang=zh-CN><head><meta charset=utf-8>
<link rel=icon href="data:,"><title>校园物联运维 · 登录 / sign in</title>
<style>body{font:14px sans-serif;max-width:20em;margin:4em auto}input,button{display:block;
width:100%;margin:.4em 0;padding:.4em}</style></head><body>
<h1>校园物联运维</h1><p>campus-iot hub</p>
<form id=f><input name=username placeholder="用户名 / username" autocomplete=username required>
<input name=password type=password placeholder="密码 / password"
 autocomplete=current-password required>
<button>登录 / Sign in</button></form><p id=e></p><script>
document.getElementById('f').onsubmit=async(ev)=>{ev.preventDefault();
const d=Object.fromEntries(new FormData(ev.target));
const r=await fetch('/api/v1/auth/login',{method:'POST',headers:{'Content-Type':'application/json'},
body:JSON.stringify(d)});if(r.ok){location.href='/'}else{
document.getElementById('e').textContent=(await r.json()).detail}};</script></body></html>"""
