"""Claim ``(node, seq)`` once: ``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Executable
from sqlalchemy.orm import Session

from cloud_hub.db.base import insert_for
from cloud_hub.db.models import SeenSeq


def claim(session: Session, *, node: str, seq: int) -> bool:
    """True when this ``(node, seq)`` was not seen before; the claim commits with the session.

    ``RETURNING`` rather than ``rowcount``: psycopg reports -1 for a skipped conflicting insert.
    """
    stmt = _claim(session.get_bind().dialect.name)
    return session.connection().execute(stmt, {"node": node, "seq": seq}).first() is not None


@cache
def _claim(dialect: str) -> Executable:
    """Built once per dialect, so its compiled form is cached too."""
    return (
        insert_for(dialect, SeenSeq)
        .on_conflict_do_nothing(index_elements=["node", "seq"])
        .returning(SeenSeq.seq)
    )
