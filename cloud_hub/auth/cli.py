"""``campus hub user add|list|revoke|token``: manage API users straight in the hub database.

This is how the first city administrator is made; every change is written to the audit log as
``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from campus_config import ConfigError
from cloud_hub.auth import audit
from cloud_hub.auth.roles import Role
from cloud_hub.auth.scope import Scope
from cloud_hub.auth.tokens import issue_token
from cloud_hub.auth.users import (
    UserError,
    add_user,
    change_role,
    find_user,
    list_users,
    revoke_user,
)
from cloud_hub.db.base import make_engine, make_sessionmaker, write_transaction
from cloud_hub.db.schema import migrate
from cloud_hub.settings import load_hub_settings

app = typer.Typer(
    help="API users: add, list, change role, revoke, and long-lived API tokens.",
    no_args_is_help=True,
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="hub.yaml (optional).")]
DatabaseOpt = Annotated[str | None, typer.Option(help="SQLAlchemy URL of the hub database.")]
UsernameArg = Annotated[str, typer.Argument(help="Login name.")]


@contextmanager
def _hub_session(config: Path | None, database_url: str | None) -> Iterator[Session]:
    """A session on the hub database in one transaction that will write (tables created when
    missing): it waits for a running hub's ingest to commit instead of failing on its first
    write with "database is locked" (SQLite)."""
    overrides = {"database_url": database_url} if database_url else {}
    try:
        # development=True: these commands never use the broker, so its password is not needed
        settings = load_hub_settings(config, development=True, **overrides)
    except ConfigError as exc:
        console.print(f"[red]invalid hub configuration[/red]\n{exc}")
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        with write_transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@app.command()
def add(
    username: UsernameArg,
    role: Annotated[Role, typer.Option(help="What the user may do.")],
    scope: Annotated[
        str, typer.Option(help="city:<id>, district:<id> or school:<id> (what the user sees).")
    ],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Add a user (prompts for a password of at least 12 characters)."""
    parsed = _parse_scope(scope)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    now = datetime.now(UTC)
    with _hub_session(config, database_url) as session:
        try:
            user = add_user(
                session, username=username, password=password, role=role, scope=parsed, now=now
            )
        except UserError as exc:
            console.print(f"[red]cannot add user[/red]: {exc}")
            raise typer.Exit(1) from None
        audit.record(
            session,
            actor=_actor(),
            action="user.add",
            result=audit.Result.OK,
            at=now,
            target=username,
            detail=f"{user.role} {user.scope}",
        )
    console.print(f"user [bold]{username}[/bold] added: {role.value} of {parsed}")


@app.command("list")
def list_command(config: ConfigOpt = None, database_url: DatabaseOpt = None) -> None:
    """List users with their role, scope and whether they are revoked."""
    with _hub_session(config, database_url) as session:
        users = list_users(session)
    table = Table(title="hub users")
    for column in ("username", "role", "scope", "created", "revoked"):
        table.add_column(column)
    for user in users:
        revoked = f"{user.disabled_at:%Y-%m-%d %H:%M}" if user.disabled_at else ""
        table.add_row(
            user.username, user.role, user.scope, f"{user.created_at:%Y-%m-%d %H:%M}", revoked
        )
    console.print(table)


@app.command()
def revoke(
    username: UsernameArg, config: ConfigOpt = None, database_url: DatabaseOpt = None
) -> None:
    """Disable a user and revoke every token it holds, at once."""
    now = datetime.now(UTC)
    with _hub_session(config, database_url) as session:
        try:
            revoke_user(session, username=username, now=now)
        except UserError as exc:
            console.print(f"[red]cannot revoke[/red]: {exc}")
            raise typer.Exit(1) from None
        audit.record(
            session, actor=_actor(), action="user.revoke", result=audit.Result.OK, at=now,
            target=username,
        )  # fmt: skip
    console.print(f"user [bold]{username}[/bold] revoked: its tokens no longer work")


@app.command()
def role(
    username: UsernameArg,
    role: Annotated[Role, typer.Option(help="The new role.")],
    scope: Annotated[str, typer.Option(help="city:<id>, district:<id> or school:<id>.")],
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Change a user's role and scope; its tokens carry the new ones from the next request."""
    parsed = _parse_scope(scope)
    now = datetime.now(UTC)
    with _hub_session(config, database_url) as session:
        try:
            before = change_role(session, username=username, role=role, scope=parsed)
        except UserError as exc:
            console.print(f"[red]cannot change the role[/red]: {exc}")
            raise typer.Exit(1) from None
        audit.record(
            session, actor=_actor(), action="user.role", result=audit.Result.OK, at=now,
            target=username, detail=f"{before} -> {role.value} {parsed}",
        )  # fmt: skip
    console.print(f"user [bold]{username}[/bold] is now {role.value} of {parsed}")


def _parse_scope(scope: str) -> Scope:
    try:
        return Scope.parse(scope)
    except ValueError as exc:
        console.print(f"[red]--scope[/red]: {exc}")
        raise typer.Exit(2) from None


@app.command()
def token(
    username: UsernameArg,
    days: Annotated[float, typer.Option(min=0.01, max=366, help="Days until it expires.")] = 90,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "api",
    config: ConfigOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Issue an API token for an integration; it is printed once and only its hash is kept."""
    now = datetime.now(UTC)
    with _hub_session(config, database_url) as session:
        user = find_user(session, username=username)
        if user is None or user.disabled_at is not None:
            console.print(f"[red]cannot issue a token[/red]: no enabled user {username!r}")
            raise typer.Exit(1)
        plain, row = issue_token(session, user=user, now=now, ttl=timedelta(days=days), label=label)
        audit.record(
            session, actor=_actor(), action="token.issue", result=audit.Result.OK, at=now,
            target=username, detail=f"token {row.id} until {row.expires_at:%Y-%m-%d}",
        )  # fmt: skip
    print(plain)
