"""Alembic migrations of the hub database: the one source of truth for its schema."""
