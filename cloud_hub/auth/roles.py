"""Roles and the tier each one is scoped to: who may see, and who may act."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CITY_ADMIN = "city_admin"  # everything in one city, users, gateways, the audit log
    DISTRICT_OPERATOR = "district_operator"  # sees and acts on one district
    SCHOOL_TECHNICIAN = "school_technician"  # sees and acts on one school
    VIEWER = "viewer"  # reads one city, district or school; never acts


class ScopeLevel(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    SCHOOL = "school"


#: the scope level each role must have (a viewer may be scoped at any level)
ROLE_LEVELS: dict[Role, frozenset[ScopeLevel]] = {
    Role.CITY_ADMIN: frozenset({ScopeLevel.CITY}),
    Role.DISTRICT_OPERATOR: frozenset({ScopeLevel.DISTRICT}),
    Role.SCHOOL_TECHNICIAN: frozenset({ScopeLevel.SCHOOL}),
    Role.VIEWER: frozenset(ScopeLevel),
}

#: roles that may change things (acknowledge alerts, send commands, approve gateways) in scope
ACTING_ROLES = frozenset({Role.CITY_ADMIN, Role.DISTRICT_OPERATOR, Role.SCHOOL_TECHNICIAN})


def check_role_level(role: Role, level: ScopeLevel) -> None:
    """Raise ``ValueError`` naming the fix when ``role`` cannot be scoped at ``level``."""
    allowed = ROLE_LEVELS[role]
    if level not in allowed:
        names = ", ".join(sorted(level.value for level in allowed))
        raise ValueError(f"scope: a {role.value} is scoped to a {names}, not a {level.value}")
