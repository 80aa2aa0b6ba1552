"""``campus hub user``: the first administrator, listing, revoking, API tokens; each audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloud_hub.api.main import create_app
from cloud_hub.auth.roles import Role
from cloud_hub.cli import app
from cloud_hub.db.base import make_engine, make_sessionmaker
from cloud_hub.settings import HubSettings
from tests.auth_support import PASSWORD, bearer, make_user
from tests.hub.write_lock import while_ingest_writes

runner = CliRunner(env={"COLUMNS": "200"})


def test_add_list_token_and_revoke_a_user(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = ["--database-url", url]

    added = runner.invoke(
        app,
        ["user", "add", "ops", "--role", "district_operator", "--scope", "district:d-north", *db],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert added.exit_code == 0, added.output
    assert "ops added: district_operator of district:d-north" in added.output
    listed = runner.invoke(app, ["user", "list", *db], env={"COLUMNS": "200"})
    assert "district:d-north" in listed.output
    issued = runner.invoke(app, ["user", "token", "ops", "--days", "1", *db])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]

    hub = create_app(HubSettings(database_url=url, development=True), run_ingest=False)
    admin = make_user(
        make_sessionmaker(make_engine(url)),
        "admin",
        Role.CITY_ADMIN,
        "city:c",
        now=datetime.now(UTC),
    )
    with TestClient(hub) as client:
        assert client.get("/api/v1/auth/me", headers=bearer(token)).json()["username"] == "ops"
        moved = ["user", "role", "ops", "--role", "viewer", "--scope", "school:s-1", *db]
        assert runner.invoke(app, moved).exit_code == 0
        me = client.get("/api/v1/auth/me", headers=bearer(token)).json()
        assert (me["role"], me["scope"], me["may_act"]) == ("viewer", "school:s-1", False)
        assert runner.invoke(app, ["user", "revoke", "ops", *db]).exit_code == 0
        assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
        login = {"username": "ops", "password": PASSWORD}
        assert client.post("/api/v1/auth/login", json=login).status_code == 401
        audit = client.get("/api/v1/audit", headers=bearer(admin)).json()["data"]
    changes = [(e["action"], e["target"]) for e in audit if e["actor"].startswith("cli:")]
    assert changes[:4] == [
        ("user.revoke", "ops"), ("user.role", "ops"), ("token.issue", "ops"), ("user.add", "ops"),
    ]  # fmt: skip


def test_mistakes_name_the_field_and_the_fix(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'hub.db'}"]
    add = ["user", "add", "x", "--password-stdin", *db]

    wrong_level = runner.invoke(
        app, [*add, "--role", "district_operator", "--scope", "school:s-1"], input=PASSWORD
    )
    bad_scope = runner.invoke(app, [*add, "--role", "viewer", "--scope", "s-1"], input=PASSWORD)
    short = runner.invoke(app, [*add, "--role", "viewer", "--scope", "city:c"], input="short")
    nobody = runner.invoke(app, ["user", "revoke", "nobody", *db])

    assert "a district_operator is scoped to a district, not a school" in wrong_level.output
    assert "write city:<id>, district:<id> or school:<id>" in bad_scope.output
    assert "password: at least 12 characters" in short.output
    assert "no such user" in nobody.output
    for result in (wrong_level, bad_scope, short, nobody):
        assert result.exit_code in (1, 2) and "Traceback" not in result.output


def test_user_commands_while_ingest_holds_the_write_lock_wait_their_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = ["--database-url", url]
    add = ["user", "add", "--password-stdin", "--role", "viewer", "--scope", "city:c", *db]
    assert runner.invoke(app, [*add[:2], "first", *add[2:]], input=PASSWORD).exit_code == 0
    engine = make_engine(url)

    added = while_ingest_writes(
        engine, lambda: runner.invoke(app, [*add[:2], "second", *add[2:]], input=PASSWORD)
    )
    issued = while_ingest_writes(
        engine, lambda: runner.invoke(app, ["user", "token", "first", *db])
    )
    engine.dispose()

    assert added.exit_code == 0, added.output  # not "database is locked"
    assert issued.exit_code == 0, issued.output
