"""Tables of the security layer: users, their tokens, the append-only audit log, gateway access."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, ForeignKey, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud_hub.db.base import Base

Key = String(64)


class User(Base):
    """A person (or an integration) with one role scoped to one city, district or school."""

    __tablename__ = "hub_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(Key, unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(80))  # "district:d-north"
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored; it expires and can be revoked."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("hub_user.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """Who did what to which target, when, from where, and how it ended. Never updated."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_action_target_at", "action", "target", "at"),
        Index("ix_audit_source_at", "source", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))  # username, "cli:<os user>" or "anonymous"
    role: Mapped[str] = mapped_column(String(32), default="")
    action: Mapped[str] = mapped_column(String(64))  # "login", "gateway.approve", "request" …
    target: Mapped[str] = mapped_column(String(200), default="")
    result: Mapped[str] = mapped_column(String(16))  # ok | denied | failed | not_found
    source: Mapped[str] = mapped_column(String(64), default="")  # client address
    detail: Mapped[str] = mapped_column(String(500), default="")


class GatewayAccess(Base):
    """A gateway approved (or revoked) for a school: the registry its reports are checked against,
    and the source of its broker credentials (a Mosquitto PBKDF2 hash, never the password)."""

    __tablename__ = "gateway_access"

    gateway_id: Mapped[str] = mapped_column(Key, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("school.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))  # approved | revoked
    broker_hash: Mapped[str] = mapped_column(String(200), default="")
    certificate_serial: Mapped[str] = mapped_column(String(64), default="")
    approved_by: Mapped[str] = mapped_column(String(100))
    approved_at: Mapped[datetime]
    revoked_by: Mapped[str] = mapped_column(String(100), default="")
    revoked_at: Mapped[datetime | None]


# Append-only, enforced by the database too: no route updates or deletes the audit log, and an
# UPDATE or DELETE from anywhere else fails.
for _statement in ("UPDATE", "DELETE"):
    event.listen(
        AuditEntry.__table__,
        "after_create",
        DDL(
            f"CREATE TRIGGER audit_entry_no_{_statement.lower()} "
            f"BEFORE {_statement} ON audit_entry "
            "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END"
        ).execute_if(dialect="sqlite"),
    )
event.listen(
    AuditEntry.__table__,
    "after_create",
    DDL(
        "CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_entry is append-only'; END $$"
    ).execute_if(dialect="postgresql"),
)
event.listen(
    AuditEntry.__table__,
    "after_create",
    DDL(
        "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
        "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()"
    ).execute_if(dialect="postgresql"),
)
