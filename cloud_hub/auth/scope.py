"""A principal's scope as SQL conditions, so every query filters by scope inside the database.

``Scope.schools(column)`` is a condition that ``column`` (any column holding a school id) names a
school in scope; ``districts`` and ``gateways`` do the same for district and gateway ids. A route
adds one of them to its ``WHERE`` clause; a row out of scope is then simply not found (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select

from cloud_hub.auth.roles import ScopeLevel
from cloud_hub.db.models import District, Gateway, School


@dataclass(frozen=True)
class Scope:
    """One city, district or school: the part of the topology a principal may see."""

    level: ScopeLevel
    id: str

    def __str__(self) -> str:
        return f"{self.level.value}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``city:<id>``, ``district:<id>`` or ``school:<id>``; ``ValueError`` names the fix."""
        level, sep, ident = text.partition(":")
        try:
            return cls(ScopeLevel(level), ident) if sep and ident else _invalid(text)
        except ValueError:
            return _invalid(text)

    def schools(self, column: Any) -> ColumnElement[bool]:
        """``column`` holds the id of a school in scope."""
        if self.level is ScopeLevel.SCHOOL:
            return column == self.id
        if self.level is ScopeLevel.DISTRICT:
            return column.in_(select(School.id).where(School.district_id == self.id))
        in_city = select(School.id).join(District).where(District.city_id == self.id)
        return column.in_(in_city)

    def districts(self, column: Any) -> ColumnElement[bool]:
        """``column`` holds the id of a district in scope (a school's own district for a school)."""
        if self.level is ScopeLevel.DISTRICT:
            return column == self.id
        if self.level is ScopeLevel.SCHOOL:
            return column.in_(select(School.district_id).where(School.id == self.id))
        return column.in_(select(District.id).where(District.city_id == self.id))

    def gateways(self, column: Any) -> ColumnElement[bool]:
        """``column`` holds the id of a gateway whose school is in scope."""
        return column.in_(select(Gateway.id).where(self.schools(Gateway.school_id)))


def _invalid(text: str) -> Scope:
    raise ValueError(
        f"scope {text[:80]!r}: write city:<id>, district:<id> or school:<id> "
        "(e.g. district:d-north)"
    )
