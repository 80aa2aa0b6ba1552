"""Bearer JWTs from the bureau's identity provider (OIDC ID or access tokens), as an option.

Accepted when signed by the configured key with an asymmetric algorithm (never ``none`` or HMAC,
so a public key can never be used as a shared secret), issued by the configured issuer for the
configured audience, unexpired, and carrying a role and a scope claim:
``{"sub": "li.wei", "campus_role": "district_operator", "campus_scope": "district:d-north"}``.
A local user of the same name that was revoked stays revoked.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path

import jwt

from cloud_hub.auth.roles import Role, check_role_level
from cloud_hub.auth.scope import Scope

ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})


class InvalidBearer(ValueError):
    """The JWT is not acceptable; the message says why (logged and audited, not shown)."""


class JwtVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_key_file: Path,
        algorithms: list[str],
        role_claim: str = "campus_role",
        scope_claim: str = "campus_scope",
        leeway_s: float = 30.0,
    ) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"oidc.algorithms: {sorted(unsafe)} refused; use RS256 or ES256")
        self.issuer = issuer
        self.audience = audience
        self.public_key_file = public_key_file
        self.algorithms = algorithms
        self.role_claim = role_claim
        self.scope_claim = scope_claim
        self.leeway_s = leeway_s

    @cached_property
    def _key(self) -> str:
        return self.public_key_file.read_text()

    def verify(self, token: str, *, now: datetime) -> tuple[str, Role, Scope]:
        """The subject, role and scope of a token valid at ``now``; ``InvalidBearer`` otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                # times are checked below against the hub's clock, like its own tokens
                options={
                    "require": ["exp", "iss", "aud", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            at = now.timestamp()
            if float(claims["exp"]) < at - self.leeway_s:
                raise InvalidBearer("jwt: expired")
            if float(claims.get("nbf", at)) > at + self.leeway_s:
                raise InvalidBearer("jwt: not yet valid")
            role = Role(str(claims.get(self.role_claim)))
            scope = Scope.parse(str(claims.get(self.scope_claim, "")))
            check_role_level(role, scope.level)
        except jwt.PyJWTError as exc:
            raise InvalidBearer(f"jwt: {exc}") from None
        except InvalidBearer:
            raise
        except (ValueError, TypeError) as exc:
            raise InvalidBearer(f"jwt claims: {exc}") from None
        return str(claims["sub"])[:64], role, scope
