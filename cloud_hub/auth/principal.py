"""Who is calling: a user (password login or API token) or a bearer of an identity-provider JWT."""

from __future__ import annotations

from dataclasses import dataclass

from cloud_hub.auth.roles import ACTING_ROLES, Role
from cloud_hub.auth.scope import Scope


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    scope: Scope
    source: str = ""  # client address, for the audit log
    token_id: int | None = None  # the hub token used (None for a JWT or the CLI)

    @property
    def may_act(self) -> bool:
        """Whether this principal may change things in its scope (every role but viewer)."""
        return self.role in ACTING_ROLES
