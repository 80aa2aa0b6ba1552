"""Claim ``(node, epoch, seq)`` once: ``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL.

The epoch names the outbox that numbered the message, so a replaced gateway (a new outbox
starting again at seq 0) never collides with its predecessor's claims. Claims are only needed
while a message can still be redelivered (a lost PUBACK, a broker queue replayed after an
outage), so ``prune`` deletes those older than a retention period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache

from sqlalchemy import Executable, delete
from sqlalchemy.orm import Session

from cloud_hub.db.base import insert_for
from cloud_hub.db.models import SeenSeq


def claim(session: Session, *, node: str, epoch: str, seq: int, at: datetime) -> bool:
    """True when this ``(node, epoch, seq)`` was not seen before; the claim commits with the
    session.

    ``RETURNING`` rather than ``rowcount``: psycopg reports -1 for a skipped conflicting insert.
    """
    stmt = _claim(session.get_bind().dialect.name)
    params = {"node": node, "epoch": epoch, "seq": seq, "claimed_at": at}
    return session.connection().execute(stmt, params).first() is not None


ClaimKey = tuple[str, str, int]  # (node, epoch, seq)


def claim_many(session: Session, keys: Iterable[ClaimKey], *, at: datetime) -> set[ClaimKey]:
    """The keys among ``keys`` not seen before, all claimed in one statement (executemany with
    ``RETURNING``); a key given twice is returned once."""
    params = [{"node": n, "epoch": e, "seq": s, "claimed_at": at} for n, e, s in sorted(set(keys))]
    if not params:
        return set()
    stmt = _claim(session.get_bind().dialect.name)
    rows = session.connection().execute(stmt, params)
    return {(node, epoch, seq) for node, epoch, seq in rows}


def prune(session: Session, *, older_than: datetime) -> int:
    """Delete claims made before ``older_than``; returns how many."""
    result = session.execute(delete(SeenSeq).where(SeenSeq.claimed_at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@cache
def _claim(dialect: str) -> Executable:
    """Built once per dialect, so its compiled form is cached too."""
    return (
        insert_for(dialect, SeenSeq)
        .on_conflict_do_nothing(index_elements=["node", "epoch", "seq"])
        .returning(SeenSeq.node, SeenSeq.epoch, SeenSeq.seq)
    )
