"""Throw-away PostgreSQL schemas on the test server (127.0.0.1:5432, user postgres, db test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_schema(prefix: str = "hub_test") -> Iterator[str]:
    """A uniquely named schema, dropped afterwards; yields the SQLAlchemy URL that uses it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield (
                "postgresql+psycopg://postgres@127.0.0.1:5432/test"
                f"?options=-csearch_path%3D{schema}"
            )
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
