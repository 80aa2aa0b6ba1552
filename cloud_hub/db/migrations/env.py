"""Alembic environment: run on the connection ``cloud_hub.db.schema`` hands over (never a URL
from an ini file), in batch mode on SQLite so ALTERs work there too."""

from __future__ import annotations

from alembic import context

from cloud_hub.db.schema import target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
