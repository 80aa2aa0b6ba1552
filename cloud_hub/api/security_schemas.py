"""Request and response models of the security routes: login, the caller, audit, gateways."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cloud_hub.auth.roles import Role

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    role: Role
    scope: str


class MePublic(BaseModel):
    username: str
    role: Role
    scope: str
    may_act: bool


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    result: str
    source: str
    detail: str


class AuditPublic(BaseModel):
    data: list[AuditEntryPublic]
    count: int


class GatewayApproval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    school_id: Id
    district_id: Id | None = None  # needed only when the school is not known yet
    school_name: str = Field(default="", max_length=200)
    client_certificate: bool = False


class GatewayCredentials(BaseModel):
    """Shown once, at approval: what the gateway's agent.yaml needs under ``hub:``."""

    gateway_id: str
    school_id: str
    username: str
    password: str
    ca_certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None


class GatewayAccessPublic(BaseModel):
    gateway_id: str
    school_id: str
    state: str
    approved_by: str
    approved_at: datetime
    revoked_by: str
    revoked_at: datetime | None


class GatewayAccessList(BaseModel):
    data: list[GatewayAccessPublic]
    count: int
