"""Claim ``(node, seq)`` once: ``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloud_hub.db.base import dialect_insert
from cloud_hub.db.models import SeenSeq


def claim(session: Session, *, node: str, seq: int) -> bool:
    """True when this ``(node, seq)`` was not seen before; the claim commits with the session.

    ``RETURNING`` rather than ``rowcount``: psycopg reports -1 for a skipped conflicting insert.
    """
    stmt = (
        dialect_insert(session, SeenSeq)
        .values(node=node, seq=seq)
        .on_conflict_do_nothing(index_elements=["node", "seq"])
        .returning(SeenSeq.seq)
    )
    return session.execute(stmt).first() is not None
