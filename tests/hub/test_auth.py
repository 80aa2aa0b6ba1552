"""API authentication: logins, tokens that expire and are revoked, forged ones, brute force, JWTs
from the bureau's identity provider, and the audit trail each of them leaves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.api.deps import get_now
from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.settings import AuthSettings, HubSettings, OidcSettings
from tests.auth_support import PASSWORD, bearer, make_user
from tests.hub.builders import T0
from tests.hub.write_lock import while_ingest_writes

ISSUER = "https://idp.bureau.example/realms/edu"
AUDIENCE = "campus-hub"


class Clock:
    """The API's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> Any:
        return self.now


@pytest.fixture
def idp_key(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """The identity provider's signing key, made here; its public half is what the hub trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "idp.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, public


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, engine: Engine, idp_key: tuple[Any, Path], clock: Clock) -> FastAPI:
    oidc = OidcSettings(issuer=ISSUER, audience=AUDIENCE, public_key_file=idp_key[1])
    settings = HubSettings(
        database_url=database_url, development=True, auth=AuthSettings(oidc=oidc)
    )
    app = create_app(settings, run_ingest=False)
    app.dependency_overrides[get_now] = clock
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin(sessions: sessionmaker[Session]) -> str:
    return make_user(sessions, "admin", Role.CITY_ADMIN, "city:city-1", now=T0)


def audit_rows(client: TestClient, token: str, **query: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", params=query, headers=bearer(token))
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def api_get_routes(app: FastAPI) -> list[str]:
    paths = app.openapi()["paths"]
    return [
        path.replace("{school_id}", "s-1")
        for path, methods in paths.items()
        if "get" in methods and path.startswith("/api/")
    ]


def test_every_api_route_answers_401_without_credentials(app: FastAPI, client: TestClient) -> None:
    routes = api_get_routes(app)
    assert {"/api/v1/schools", "/api/v1/devices", "/api/v1/alerts", "/api/v1/audit"} <= set(routes)

    for route in routes:
        response = client.get(route)
        assert response.status_code == 401, route
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "<form" in client.get("/login").text


def test_login_gives_a_token_and_a_cookie_that_open_the_api(
    client: TestClient, sessions: sessionmaker[Session], admin: str
) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["role"], body["scope"], body["token_type"]) == (
        "city_admin",
        "city:city-1",
        "bearer",
    )
    assert body["expires_at"] == "2026-03-02T20:00:00Z"  # 12 h default
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # http
    assert client.get("/api/v1/auth/me").json()["username"] == "admin"  # the cookie
    client.cookies.clear()
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"])).json()
    assert me == {
        "username": "admin",
        "role": "city_admin",
        "scope": "city:city-1",
        "may_act": True,
    }


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    client: TestClient, admin: str
) -> None:
    wrong = client.post("/api/v1/auth/login", json={"username": "admin", "password": "x" * 12})
    nobody = client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 12})

    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"detail": "wrong username or password"}
    logins = audit_rows(client, admin, action="login")
    assert [(r["target"], r["result"]) for r in logins] == [
        ("nobody", "denied"),
        ("admin", "denied"),
    ]


def test_brute_force_is_rate_limited_even_for_the_right_password_until_the_window_passes(
    client: TestClient, clock: Clock, sessions: sessionmaker[Session], admin: str
) -> None:
    make_user(sessions, "ops", Role.DISTRICT_OPERATOR, "district:d-north", now=T0)
    for attempt in range(5):
        guess = {"username": "ops", "password": f"guess-number-{attempt}"}
        assert client.post("/api/v1/auth/login", json=guess).status_code == 401

    right = {"username": "ops", "password": PASSWORD}
    refused = client.post("/api/v1/auth/login", json=right)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "300"
    other = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert other.status_code == 200  # another account from the same address is not locked out

    clock.now = T0 + timedelta(seconds=301)
    assert client.post("/api/v1/auth/login", json=right).status_code == 200
    results = [r["detail"] for r in audit_rows(client, admin, action="login", actor="ops")]
    assert results.count("rate limited") == 1 and results[0].startswith("token ")


def test_one_address_guessing_many_usernames_is_rate_limited_too(
    app: FastAPI, client: TestClient, admin: str
) -> None:
    settings = app.state.settings
    fewer = settings.auth.model_copy(update={"login_max_per_source": 4})  # 20 by default
    app.state.settings = settings.model_copy(update={"auth": fewer})
    for number in range(4):
        guess = {"username": f"user-{number}", "password": "password-guess"}
        assert client.post("/api/v1/auth/login", json=guess).status_code == 401

    right = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})

    assert right.status_code == 429


def test_an_expired_token_is_refused(
    client: TestClient, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    token = make_user(sessions, "tech", Role.SCHOOL_TECHNICIAN, "school:s-1", now=T0)
    assert client.get("/api/v1/schools", headers=bearer(token)).status_code == 200

    clock.now = T0 + timedelta(hours=1, seconds=1)
    assert client.get("/api/v1/schools", headers=bearer(token)).status_code == 401


def test_logout_revokes_the_token_at_once(client: TestClient, admin: str) -> None:
    assert client.post("/api/v1/auth/logout", headers=bearer(admin)).status_code == 204

    assert client.get("/api/v1/schools", headers=bearer(admin)).status_code == 401


def test_a_login_and_a_logout_while_ingest_holds_the_write_lock_wait_their_turn(
    client: TestClient, engine: Engine, admin: str
) -> None:
    def login() -> httpx.Response:
        return client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})

    def logout() -> httpx.Response:
        return client.post("/api/v1/auth/logout", headers=bearer(admin))

    assert while_ingest_writes(engine, login).status_code == 200  # not a 500 "database is locked"
    assert while_ingest_writes(engine, logout).status_code == 204
    client.cookies.clear()  # the login's cookie
    assert client.get("/api/v1/schools", headers=bearer(admin)).status_code == 401


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        lambda token: "cit_" + "A" * 43,
        lambda token: token + "x" * 5000,
        lambda token: "not-a-token",
        lambda token: "cit_' OR 1=1 --",
    ],
    ids=["altered", "random", "oversize", "garbage", "sql"],
)
def test_forged_hub_tokens_are_refused_and_audited(
    client: TestClient, admin: str, forge: Any
) -> None:
    response = client.get("/api/v1/schools", headers=bearer(forge(admin)))

    assert response.status_code == 401
    denied = audit_rows(client, admin, action="request", result="denied")
    assert denied[0]["target"] == "GET /api/v1/schools" and denied[0]["actor"] == "anonymous"


def idp_token(key: Any, **changes: Any) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "li.wei",
        "exp": int((T0 + timedelta(minutes=5)).timestamp()),
        "campus_role": "district_operator",
        "campus_scope": "district:d-north",
    }
    algorithm = changes.pop("algorithm", "ES256")
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


def test_a_jwt_from_the_identity_provider_is_accepted_with_its_role_and_scope(
    client: TestClient, idp_key: tuple[Any, Path]
) -> None:
    me = client.get("/api/v1/auth/me", headers=bearer(idp_token(idp_key[0])))

    assert me.status_code == 200, me.text
    assert me.json() == {
        "username": "li.wei",
        "role": "district_operator",
        "scope": "district:d-north",
        "may_act": True,
    }


@pytest.mark.parametrize(
    "forge",
    [
        lambda key, pub: idp_token(ec.generate_private_key(ec.SECP256R1())),  # someone else's key
        lambda key, pub: idp_token(key, exp=int((T0 - timedelta(minutes=5)).timestamp())),
        lambda key, pub: idp_token(key, iss="https://evil.example"),
        lambda key, pub: idp_token(key, aud="another-app"),
        lambda key, pub: idp_token(key, campus_role="superuser"),
        lambda key, pub: idp_token(key, campus_role=None),
        lambda key, pub: idp_token(key, campus_role="city_admin"),  # district scope: mismatch
        lambda key, pub: idp_token(None, algorithm="none"),
        lambda key, pub: idp_token(pub.read_bytes(), algorithm="HS256"),  # key confusion
    ],
    ids=[
        "other-key", "expired", "issuer", "audience", "role", "no-role", "role-scope",
        "alg-none", "hs256-with-public-key",
    ],
)  # fmt: skip
def test_forged_or_unfit_jwts_are_refused(
    client: TestClient, idp_key: tuple[Any, Path], forge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyJWT refuses to HMAC-sign with a PEM public key; the attacker's library would not
    monkeypatch.setattr(jwt.algorithms.HMACAlgorithm, "prepare_key", lambda self, key: key)
    token = forge(*idp_key)

    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401


def test_a_revoked_local_user_stays_revoked_when_it_comes_with_a_jwt(
    client: TestClient, sessions: sessionmaker[Session], idp_key: tuple[Any, Path]
) -> None:
    from cloud_hub.auth.users import revoke_user

    make_user(sessions, "li.wei", Role.DISTRICT_OPERATOR, "district:d-north", now=T0)
    with sessions() as session, session.begin():
        revoke_user(session, username="li.wei", now=T0)

    assert client.get("/api/v1/auth/me", headers=bearer(idp_token(idp_key[0]))).status_code == 401


def test_the_audit_log_is_for_city_admins_only_and_append_only(
    client: TestClient, sessions: sessionmaker[Session], engine: Engine, admin: str
) -> None:
    operator = make_user(sessions, "ops", Role.DISTRICT_OPERATOR, "district:d-north", now=T0)
    assert client.get("/api/v1/audit", headers=bearer(operator)).status_code == 403
    denied = audit_rows(client, admin, result="denied")[0]
    assert (denied["actor"], denied["role"], denied["target"]) == (
        "ops", "district_operator", "GET /api/v1/audit",
    )  # fmt: skip
    assert denied["source"] == "testclient"

    for method in ("put", "patch", "delete"):
        assert client.request(method, "/api/v1/audit", headers=bearer(admin)).status_code == 405
    for statement in ("UPDATE audit_entry SET result = 'ok'", "DELETE FROM audit_entry"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))


def test_the_audit_log_pages_back_and_filters(client: TestClient, admin: str) -> None:
    for number in range(3):
        client.get("/api/v1/schools", headers=bearer(f"cit_forged-{number}"))

    first = client.get("/api/v1/audit", params={"limit": 2}, headers=bearer(admin)).json()
    rest = client.get(
        "/api/v1/audit", params={"limit": 2, "before_id": first["data"][-1]["id"]},
        headers=bearer(admin),
    ).json()  # fmt: skip

    assert first["count"] == rest["count"] == 3
    assert [e["id"] for e in first["data"] + rest["data"]] == [3, 2, 1]
    since = client.get(
        "/api/v1/audit", params={"since": "2026-03-02T08:00:00+00:00", "result": "ok"},
        headers=bearer(admin),
    ).json()  # fmt: skip
    assert since == {"data": [], "count": 0}
    naive = client.get("/api/v1/audit", params={"since": "2026-03-02T08:00"}, headers=bearer(admin))
    assert naive.status_code == 422  # a time without its offset is ambiguous
